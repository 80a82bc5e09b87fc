package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize refuses files no gateway config comes near, before parsing
// them.
const maxFileSize = 16 << 20

// Load reads, decodes, fills in defaults and validates the config file at
// path. Anything wrong with the file, including a failure to read it, is
// returned as *Errors listing every problem found, sorted by line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Errors{List: []Problem{{File: path, Msg: fmt.Sprintf("cannot read the config: %v", err)}}}
	}
	return Parse(path, data)
}

// Parse is Load for a file already in memory; file names it in messages.
func Parse(file string, data []byte) (*Config, error) {
	cfg, probs := parse(file, data)
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, &Errors{List: probs}
	}
	return cfg, nil
}

func parse(file string, data []byte) (*Config, []Problem) {
	cfg, d, prob := decode(file, data)
	if prob != nil {
		return nil, []Problem{*prob}
	}
	if d.exhausted() {
		return nil, d.probs // what remains unchecked would only mislead
	}
	v := &validator{decoder: d}
	v.defaults(cfg)
	v.validate(cfg)
	if len(d.probs) > 0 {
		return nil, d.probs
	}
	return cfg, nil
}

// decode parses the file and walks it into a Config, without defaults or
// validation. A problem that stops everything (syntax, empty file) is
// returned alone; the decoder holds the rest.
func decode(file string, data []byte) (*Config, *decoder, *Problem) {
	if len(data) > maxFileSize {
		return nil, nil, &Problem{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf("file is %d bytes, more than a config can be (%d)", len(data), maxFileSize)}
	}
	root, prob := parseYAML(file, data)
	if prob != nil {
		return nil, nil, prob
	}
	sum := sha256.Sum256(data)
	cfg := &Config{Path: file, hash: hex.EncodeToString(sum[:])}
	d := newDecoder(file)
	d.limit = min(maxNodes, aliasFactor*countNodes(root)+aliasSlack)
	d.places[""] = place{val: root}
	d.walk(root, reflect.ValueOf(cfg).Elem(), "")
	return cfg, d, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser (parserc.go), as
// opposed to its scanner.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// parseYAML parses exactly one YAML document into its root node.
func parseYAML(file string, data []byte) (root *yaml.Node, prob *Problem) {
	defer func() {
		// yaml.v3 has panicked on hostile input before (CVE-2022-28948);
		// a config file must never take the gateway down with it.
		if r := recover(); r != nil {
			root, prob = nil, &Problem{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{File: file, Line: 1, Col: 1, Msg: "file is empty (expected the sections gateway, uplink and devices)"}
		}
		return nil, syntaxProblem(file, data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Problem{File: file, Line: max(next.Line, 1), Col: 1, Msg: "a second YAML document starts here (a config is one document; remove the ---)"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxProblem(file, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Problem{File: file, Line: 1, Col: 1, Msg: "file is empty (expected the sections gateway, uplink and devices)"}
	}
	return doc.Content[0], nil
}

// syntaxProblem turns a yaml.v3 syntax error into a Problem. yaml.v3 gives
// a line but no column, and leaves the line out when it is the first.
func syntaxProblem(file string, data []byte, err error) *Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// yaml.v3 prints the 0-based line for parser errors and the 1-based
	// line for scanner errors (decode.go, parser.fail), and leaves out a
	// line 0. The parser's messages are few and known.
	if parserProblems[msg] {
		line++
	}
	line = max(line, 1)
	col := 1
	if strings.Contains(msg, "tab") || strings.Contains(msg, "cannot start any token") {
		// yaml.v3 may name the line before the tab; look at it and the next.
		lines := bytes.Split(data, []byte("\n"))
		for l := line; l <= line+1 && l <= len(lines); l++ {
			if i := bytes.IndexByte(lines[l-1], '\t'); i >= 0 {
				line, col = l, i+1
				msg += " (YAML indents with spaces only, never tabs)"
				break
			}
		}
	}
	return &Problem{File: file, Line: line, Col: col, Msg: "YAML syntax error: " + msg}
}

// Hash is the SHA-256 of the file's bytes in hex: it tells whether two
// loads read the same file, for reload decisions and the status page.
// It is empty for a Config that was not loaded from a file.
func (c *Config) Hash() string { return c.hash }

// TagByName indexes every tag of every device by its name. The pointers
// point into c.Devices.
func (c *Config) TagByName() map[string]*Tag {
	m := map[string]*Tag{}
	for i := range c.Devices {
		for j := range c.Devices[i].Tags {
			t := &c.Devices[i].Tags[j]
			m[t.Name] = t
		}
	}
	return m
}

// Width is the number of 16-bit registers the tag's value occupies: 1 for
// bool, bit, int16 and uint16; 2 for int32, uint32 and float32; 4 for
// float64. An unknown type counts as 1.
func (t *Tag) Width() int {
	switch t.Type {
	case TypeInt32, TypeUint32, TypeFloat32:
		return 2
	case TypeFloat64:
		return 4
	}
	return 1
}
