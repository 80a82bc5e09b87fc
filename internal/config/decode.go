package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the work of one decode. A tag written on one line with
// its four alarm levels is about 20 values, so a gateway at its measured
// limit of 50,000 tags (docs/PERFORMANCE.md) writes about 1,000,000; the
// bound leaves room above that, and the alias bound below is what stops a
// small file from expanding.
const maxNodes = 5_000_000

// Aliases can make a small file expand into a huge tree ("billion
// laughs"). A walk may visit at most aliasFactor times the nodes written in
// the file, plus aliasSlack; legitimate aliases (shared device settings)
// stay far below that, since tag names must be unique anyway.
const (
	aliasFactor = 10
	aliasSlack  = 10_000
)

// countNodes counts the nodes written in the file, not following aliases.
func countNodes(root *yaml.Node) int {
	n := 0
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n++
		stack = append(stack, top.Content...)
	}
	return n
}

// place is where a field path was found: its value node (aliases
// resolved). A null value means the field was written empty.
type place struct {
	val *yaml.Node
}

// decoder walks the YAML node tree alongside the Go type of Config,
// setting fields one value at a time so that every wrong value is reported
// with its own position instead of stopping at the first.
type decoder struct {
	file    string
	places  map[string]place
	bad     map[string]bool // paths whose value could not be decoded
	probs   []Problem
	said    map[string]bool     // problems already reported
	merging map[*yaml.Node]bool // mappings being merged, to catch loops
	nodes   int                 // nodes visited
	limit   int                 // most nodes the walk may visit
	fields  map[reflect.Type][]field
}

type field struct {
	name  string
	index int
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:    file,
		places:  map[string]place{},
		bad:     map[string]bool{},
		said:    map[string]bool{},
		merging: map[*yaml.Node]bool{},
		fields:  map[reflect.Type][]field{},
	}
}

// problemAt records a problem at a node's position.
func (d *decoder) problemAt(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	if key := p.String(); !d.said[key] { // aliases can lead to one spot twice
		d.said[key] = true
		d.probs = append(d.probs, p)
	}
}

// fieldsOf lists the YAML names of a struct's decodable fields in
// declaration order.
func (d *decoder) fieldsOf(t reflect.Type) []field {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs = append(fs, field{name: name, index: i})
	}
	d.fields[t] = fs
	return fs
}

// exhausted says the walk has visited as many nodes as it may.
func (d *decoder) exhausted() bool { return d.nodes > d.limit }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isMerge says whether a key is the merge key "<<" (the same test as
// yaml.v3's, so both read a file the same way).
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walk decodes node n into v, which must be addressable, recording the
// position of path and reporting every value that does not fit.
func (d *decoder) walk(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil || n.Kind == yaml.AliasNode {
		d.problemAt(n, path, "alias nests too deep")
		d.bad[path] = true
		return
	}
	if d.exhausted() {
		return
	}
	d.nodes++
	if d.nodes > d.limit {
		d.problemAt(n, path, "the file expands to more than %d values (are aliases repeating a large part many times?)", d.limit)
		return
	}
	if isNull(n) {
		return // absent: the default applies
	}
	if v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.problemAt(n, path, "%s", err.Error())
			d.bad[path] = true
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.walk(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		d.walkStruct(n, v, path)
	case reflect.Slice:
		d.walkSlice(n, v, path)
	default:
		d.scalar(n, v, path)
	}
}

func (d *decoder) walkStruct(n *yaml.Node, v reflect.Value, path string) {
	fs := d.fieldsOf(v.Type())
	if n.Kind != yaml.MappingNode {
		names := make([]string, len(fs))
		for i, f := range fs {
			names[i] = f.name
		}
		hint := ""
		if n.Kind == yaml.SequenceNode && path != "" {
			hint = "; remove the '- ' in front of the fields"
		}
		d.problemAt(n, path, "expected a mapping with fields %s, got %s%s", strings.Join(names, ", "), kindName(n), hint)
		d.bad[path] = true
		return
	}
	seen := map[string]*yaml.Node{}
	d.mapping(n, v, path, fs, seen, 0)
}

// mapping decodes the pairs of mapping n into struct v. Merge keys ("<<")
// are honoured the way YAML defines them: keys written in the mapping
// itself win over merged ones, and among several merged mappings the
// earlier wins.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, fs []field, seen map[string]*yaml.Node, depth int) {
	// Merged mappings first, so explicit keys are set after them and win.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !isMerge(k) {
			continue
		}
		src := resolve(val)
		var list []*yaml.Node
		switch {
		case src != nil && src.Kind == yaml.MappingNode:
			list = []*yaml.Node{src}
		case src != nil && src.Kind == yaml.SequenceNode:
			list = src.Content
		default:
			d.problemAt(val, path, "a merge (<<) needs a mapping or a list of mappings, got %s", kindName(val))
			continue
		}
		for j := len(list) - 1; j >= 0 && !d.exhausted(); j-- {
			d.nodes++ // merges cost like values: a merge can expand like an alias
			m := resolve(list[j])
			if m == nil || m.Kind != yaml.MappingNode {
				d.problemAt(list[j], path, "a merge (<<) needs a mapping or a list of mappings, got %s", kindName(list[j]))
				continue
			}
			if d.merging[m] || m == n {
				d.problemAt(k, path, "a merge (<<) includes the mapping it is in")
				continue
			}
			if depth > 10 {
				d.problemAt(m, path, "merges (<<) nest too deep")
				continue
			}
			// A merged mapping has keys of its own; they may repeat keys
			// of the mapping that merges it, so they get a fresh "seen".
			d.merging[n] = true
			d.mapping(m, v, path, fs, map[string]*yaml.Node{}, depth+1)
			delete(d.merging, n)
		}
	}
	for i := 0; i+1 < len(n.Content) && !d.exhausted(); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			continue
		}
		k = resolve(k)
		if k == nil || k.Kind != yaml.ScalarNode {
			d.problemAt(n.Content[i], path, "a field name must be a plain word, got %s", kindName(n.Content[i]))
			continue
		}
		name := k.Value
		fpath := join(path, name)
		if first, dup := seen[name]; dup {
			d.problemAt(k, fpath, "set twice (first at line %d; remove one)", first.Line)
			continue
		}
		seen[name] = k
		idx := -1
		for _, f := range fs {
			if f.name == name {
				idx = f.index
			}
		}
		if idx < 0 {
			d.problemAt(k, fpath, "unknown field (%s)", suggest(name, fs))
			continue
		}
		d.places[fpath] = place{val: resolve(val)}
		fv := v.Field(idx)
		fv.SetZero() // a merged value, if any, is overridden, not mixed in
		d.walk(val, fv, fpath)
	}
}

func (d *decoder) walkSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.MappingNode {
			hint = "; start each entry with '- '"
		}
		d.problemAt(n, path, "expected a list, got %s%s", kindName(n), hint)
		d.bad[path] = true
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		if d.exhausted() {
			break
		}
		epath := fmt.Sprintf("%s[%d]", path, i)
		d.places[epath] = place{val: resolve(e)}
		d.walk(e, s.Index(i), epath)
	}
	v.Set(s)
}

// scalar decodes one leaf value. Numbers are checked more strictly than
// yaml.v3 does on its own: it would quietly truncate "address: 1.5" to 1.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	fail := func(format string, args ...any) {
		d.problemAt(n, path, format, args...)
		d.bad[path] = true
	}
	if n.Kind != yaml.ScalarNode {
		fail("expected a single value, got %s", kindName(n))
		return
	}
	tag := n.ShortTag()
	quoted := ""
	if tag == "!!str" {
		if _, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); err == nil {
			quoted = "; remove the quotes"
		}
	}
	switch v.Kind() {
	case reflect.String:
		var s string
		if err := n.Decode(&s); err != nil {
			fail("%q is not text", n.Value)
			return
		}
		v.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if tag == "!!float" {
			fail("%s is not a whole number", n.Value)
			return
		}
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil {
			fail("%q is not a whole number%s", n.Value, quoted)
			return
		}
		if v.OverflowInt(i) {
			fail("%s is too large", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			fail("%q is not a number%s", n.Value, quoted)
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			fail("%s is not a finite number", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			fail("%q is not true or false", n.Value)
			return
		}
		v.SetBool(b)
	default:
		fail("cannot decode into %s", v.Type())
	}
}

// suggest names the field the user probably meant, or lists them all.
func suggest(name string, fs []field) string {
	best, bestDist := "", math.MaxInt
	for _, f := range fs {
		if dist := editDistance(strings.ToLower(name), f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best != "" && (bestDist <= 2 || bestDist*3 <= len(name)) {
		return "did you mean " + best + "?"
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return "valid fields: " + strings.Join(names, ", ")
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 100 || len(rb) > 100 {
		return math.MaxInt / 2 // no one misspells a field name that badly
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
