// Package cond compiles the condition of an interlock, a small boolean
// language over tag values:
//
//	LT-101 >= 18.5 and not XS-101
//	vote(2, GT-201 >= 50, GT-202 >= 50, GT-203 >= 50) or LSHH-101
//
// Grammar (keywords lower case):
//
//	expr    = and { ("or" | "||") and }
//	and     = unary { ("and" | "&&") unary }
//	unary   = ("not" | "!") unary | primary
//	primary = "(" expr ")" | "true" | "false"
//	        | "vote" "(" k "," expr { "," expr } ")"     k of n must hold
//	        | operand [ op operand ]                     a bare tag means tag != 0
//	op      = "<" | "<=" | ">" | ">=" | "==" | "!="
//	operand = tag | number
//
// Tag numbers (位号) such as LT-101 contain '-', which a general
// expression language (expr-lang/expr) reads as subtraction; the language
// needs no arithmetic, so a parser of its own is both smaller and clearer.
// A compiled Expr evaluates without allocating.
//
// Every comparison (a "leaf") knows what to do when one of its tags is not
// Good: with the trip policy it takes the value that moves the whole
// condition towards tripping (true, or false under an odd number of nots),
// so vote(2, a, b, c) with one bad input degrades to 1oo2 on the others;
// with the hold policy it keeps its last result from Good values (false
// before any).
package cond

import (
	"fmt"
	"strconv"
	"strings"
)

// Inputs gives the current value of the i-th tag of Expr.Tags.
type Inputs interface {
	Input(i int) (v float64, good bool)
}

// Leaf is one comparison of a condition.
type Leaf struct {
	Pos   int    // byte offset in the source, for messages
	Text  string // the comparison as written
	Tags  []int  // indexes into Expr.Tags of its tag operands
	Bare  bool   // a tag alone: true when it is not 0 (for digital tags)
	Const []float64

	op      string
	a, b    operand
	negated bool // under an odd number of nots
	last    bool // last result from Good inputs (hold policy)
}

type operand struct {
	tag int // -1 for a constant
	val float64
}

// Expr is a compiled condition. It holds the hold-policy memory of its
// leaves, so each interlock needs its own Expr.
type Expr struct {
	Src    string
	Tags   []string // every tag it reads, in order of first appearance
	Leaves []*Leaf
	root   node
	hold   bool
}

// SetHoldOnBad chooses the hold policy (true) or the trip policy (false,
// the default).
func (e *Expr) SetHoldOnBad(hold bool) { e.hold = hold }

// Eval evaluates the condition against in.
func (e *Expr) Eval(in Inputs) bool { return e.root.eval(e, in) }

type node interface {
	eval(e *Expr, in Inputs) bool
}

type (
	orNode    struct{ a, b node }
	andNode   struct{ a, b node }
	notNode   struct{ a node }
	constNode bool
	voteNode  struct {
		k    int
		args []node
	}
)

func (n *orNode) eval(e *Expr, in Inputs) bool {
	// Both sides run so that every leaf's hold memory stays current.
	a, b := n.a.eval(e, in), n.b.eval(e, in)
	return a || b
}
func (n *andNode) eval(e *Expr, in Inputs) bool {
	a, b := n.a.eval(e, in), n.b.eval(e, in)
	return a && b
}
func (n *notNode) eval(e *Expr, in Inputs) bool { return !n.a.eval(e, in) }
func (n constNode) eval(*Expr, Inputs) bool     { return bool(n) }
func (n *voteNode) eval(e *Expr, in Inputs) bool {
	c := 0
	for _, a := range n.args {
		if a.eval(e, in) {
			c++
		}
	}
	return c >= n.k
}

func (l *Leaf) eval(e *Expr, in Inputs) bool {
	a, okA := l.a.value(in)
	b, okB := 0.0, true
	if !l.Bare {
		b, okB = l.b.value(in)
	}
	if !okA || !okB {
		if e.hold {
			return l.last
		}
		return !l.negated
	}
	var r bool
	switch l.op {
	case "":
		r = a != 0
	case "<":
		r = a < b
	case "<=":
		r = a <= b
	case ">":
		r = a > b
	case ">=":
		r = a >= b
	case "==":
		r = a == b
	case "!=":
		r = a != b
	}
	l.last = r
	return r
}

func (o operand) value(in Inputs) (float64, bool) {
	if o.tag < 0 {
		return o.val, true
	}
	return in.Input(o.tag)
}

// Error is a syntax error at a byte offset of the source.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("at column %d: %s", e.Pos+1, e.Msg) }

// Parse compiles src.
func Parse(src string) (*Expr, error) {
	p := &parser{src: src, e: &Expr{Src: src}, index: map[string]int{}}
	p.next()
	if p.tok.kind == tEOF {
		return nil, &Error{0, "empty condition"}
	}
	root, err := p.or(false)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errf("unexpected %s (expected and, or, or the end)", p.tok)
	}
	p.e.root = root
	return p.e, nil
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNum
	tOp   // comparison
	tSym  // ( ) ,
	tBool // && || !
)

type token struct {
	kind tokKind
	text string
	pos  int
	num  float64
}

func (t token) String() string {
	if t.kind == tEOF {
		return "end of condition"
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src   string
	pos   int
	tok   token
	err   error
	e     *Expr
	index map[string]int
}

func (p *parser) errf(format string, args ...any) error {
	if p.err != nil {
		return p.err
	}
	return &Error{p.tok.pos, fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isIdent(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next scans one token into p.tok (p.err on a bad character).
func (p *parser) next() {
	s := p.src
	for p.pos < len(s) && (s[p.pos] == ' ' || s[p.pos] == '\t' || s[p.pos] == '\n' || s[p.pos] == '\r') {
		p.pos++
	}
	start := p.pos
	if p.pos >= len(s) {
		p.tok = token{kind: tEOF, pos: start}
		return
	}
	c := s[p.pos]
	two := ""
	if p.pos+1 < len(s) {
		two = s[p.pos : p.pos+2]
	}
	switch {
	case isIdentStart(c):
		for p.pos < len(s) && isIdent(s[p.pos]) {
			p.pos++
		}
		p.tok = token{kind: tIdent, text: s[start:p.pos], pos: start}
	case isDigit(c) || (c == '-' || c == '+' || c == '.') && p.pos+1 < len(s) && (isDigit(s[p.pos+1]) || s[p.pos+1] == '.'):
		p.pos++
		for p.pos < len(s) && (isDigit(s[p.pos]) || s[p.pos] == '.' ||
			(s[p.pos] == 'e' || s[p.pos] == 'E') ||
			(s[p.pos] == '-' || s[p.pos] == '+') && (s[p.pos-1] == 'e' || s[p.pos-1] == 'E')) {
			p.pos++
		}
		text := s[start:p.pos]
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			p.tok = token{kind: tNum, text: text, pos: start}
			p.err = &Error{start, fmt.Sprintf("%q is not a number", text)}
			return
		}
		p.tok = token{kind: tNum, text: text, pos: start, num: v}
	case two == "<=" || two == ">=" || two == "==" || two == "!=":
		p.pos += 2
		p.tok = token{kind: tOp, text: two, pos: start}
	case two == "&&" || two == "||":
		p.pos += 2
		p.tok = token{kind: tBool, text: two, pos: start}
	case c == '<' || c == '>':
		p.pos++
		p.tok = token{kind: tOp, text: s[start:p.pos], pos: start}
	case c == '=':
		p.pos++
		p.tok = token{kind: tOp, text: "=", pos: start}
		p.err = &Error{start, `"=" is not a comparison (use == to compare)`}
	case c == '!':
		p.pos++
		p.tok = token{kind: tBool, text: "!", pos: start}
	case c == '(' || c == ')' || c == ',':
		p.pos++
		p.tok = token{kind: tSym, text: s[start:p.pos], pos: start}
	default:
		p.pos++
		p.tok = token{kind: tSym, text: s[start:p.pos], pos: start}
		p.err = &Error{start, fmt.Sprintf("unexpected character %q", c)}
	}
}

func (p *parser) is(kind tokKind, text string) bool { return p.tok.kind == kind && p.tok.text == text }

func (p *parser) keyword(k string) bool { return p.tok.kind == tIdent && p.tok.text == k }

func (p *parser) or(neg bool) (node, error) {
	a, err := p.and(neg)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") || p.is(tBool, "||") {
		p.next()
		b, err := p.and(neg)
		if err != nil {
			return nil, err
		}
		a = &orNode{a, b}
	}
	return a, p.err
}

func (p *parser) and(neg bool) (node, error) {
	a, err := p.unary(neg)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") || p.is(tBool, "&&") {
		p.next()
		b, err := p.unary(neg)
		if err != nil {
			return nil, err
		}
		a = &andNode{a, b}
	}
	return a, p.err
}

func (p *parser) unary(neg bool) (node, error) {
	if p.keyword("not") || p.is(tBool, "!") {
		p.next()
		a, err := p.unary(!neg)
		if err != nil {
			return nil, err
		}
		return &notNode{a}, nil
	}
	return p.primary(neg)
}

func (p *parser) expect(sym string) error {
	if !p.is(tSym, sym) {
		return p.errf("expected %q, found %s", sym, p.tok)
	}
	p.next()
	return p.err
}

func (p *parser) primary(neg bool) (node, error) {
	if p.err != nil {
		return nil, p.err
	}
	switch {
	case p.is(tSym, "("):
		p.next()
		n, err := p.or(neg)
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	case p.keyword("true"), p.keyword("false"):
		v := p.tok.text == "true"
		p.next()
		return constNode(v), p.err
	case p.keyword("vote"):
		return p.vote(neg)
	case p.keyword("and"), p.keyword("or"), p.keyword("not"):
		return nil, p.errf("expected a tag, a number or (, found %s", p.tok)
	}
	start := p.tok.pos
	a, err := p.operand()
	if err != nil {
		return nil, err
	}
	leaf := &Leaf{Pos: start, a: a, negated: neg}
	if p.tok.kind == tOp {
		leaf.op = p.tok.text
		p.next()
		b, err := p.operand()
		if err != nil {
			return nil, err
		}
		leaf.b = b
		if a.tag < 0 && b.tag < 0 {
			return nil, &Error{start, "compares two numbers (one side must be a tag)"}
		}
	} else {
		if a.tag < 0 {
			return nil, &Error{start, "a number alone is not a condition (compare a tag with it)"}
		}
		leaf.Bare = true
		leaf.b = operand{tag: -1}
	}
	end := p.tok.pos
	if p.tok.kind == tEOF {
		end = len(p.src)
	}
	leaf.Text = strings.TrimSpace(p.src[start:end])
	for _, o := range []operand{leaf.a, leaf.b} {
		if o.tag >= 0 {
			leaf.Tags = append(leaf.Tags, o.tag)
		} else if !leaf.Bare {
			leaf.Const = append(leaf.Const, o.val)
		}
	}
	p.e.Leaves = append(p.e.Leaves, leaf)
	return leaf, p.err
}

func (p *parser) operand() (operand, error) {
	if p.err != nil {
		return operand{}, p.err
	}
	switch p.tok.kind {
	case tNum:
		v := p.tok.num
		p.next()
		return operand{tag: -1, val: v}, p.err
	case tIdent:
		switch p.tok.text {
		case "and", "or", "not", "vote", "true", "false":
			return operand{}, p.errf("expected a tag or a number, found keyword %s", p.tok)
		}
		name := p.tok.text
		i, ok := p.index[name]
		if !ok {
			i = len(p.e.Tags)
			p.index[name] = i
			p.e.Tags = append(p.e.Tags, name)
		}
		p.next()
		return operand{tag: i}, p.err
	}
	return operand{}, p.errf("expected a tag or a number, found %s", p.tok)
}

func (p *parser) vote(neg bool) (node, error) {
	p.next()
	if err := p.expect("("); err != nil {
		return nil, err
	}
	if p.tok.kind != tNum || p.tok.num != float64(int(p.tok.num)) || p.tok.num < 1 {
		return nil, p.errf("vote needs k, a whole number of inputs that must hold, first: vote(2, a, b, c)")
	}
	n := &voteNode{k: int(p.tok.num)}
	kPos := p.tok.pos
	p.next()
	for p.is(tSym, ",") {
		p.next()
		a, err := p.or(neg)
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, a)
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if len(n.args) < 2 || n.k > len(n.args) {
		return nil, &Error{kPos, fmt.Sprintf("vote(%d, ...) over %d inputs: k must be 1..n and n at least 2", n.k, len(n.args))}
	}
	return n, nil
}
