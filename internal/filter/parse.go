package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/semver"
)

// Limits on filter input, so that a filter from an API request cannot make
// the parser or the database do unbounded work.
const (
	MaxLength = 4096 // bytes
	MaxDepth  = 32   // nested parentheses and "not"s
)

// SyntaxError reports where and why a filter is invalid.
type SyntaxError struct {
	Line   int    // 1-based
	Column int    // 1-based, counted in characters (Unicode code points)
	Offset int    // 0-based byte offset
	Msg    string // e.g. `expected a string after "=="`
}

func (e *SyntaxError) Error() string {
	if e.Line > 1 {
		return fmt.Sprintf("filter: line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("filter: column %d: %s", e.Column, e.Msg)
}

func newSyntaxError(src string, off int, msg string) *SyntaxError {
	line, lineStart := 1, 0
	for i := 0; i < off && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	col := 1 + utf8.RuneCountInString(src[lineStart:min(off, len(src))])
	return &SyntaxError{Line: line, Column: col, Offset: off, Msg: msg}
}

// Expr is a parsed filter. Build one with Parse; the zero value is not usable.
type Expr struct {
	root node
}

// node is one of *orNode, *andNode, *notNode, *cmpNode, *memberNode.
type node interface{ isNode() }

type orNode struct{ terms []node }
type andNode struct{ terms []node }
type notNode struct{ x node }

// memberNode is tag:NAME (group false) or group:NAME (group true).
type memberNode struct {
	group bool
	name  string
}

// cmpNode compares a field with one value (==, !=, <, <=, >, >=) or a list
// of values (in, not in).
type cmpNode struct {
	field field
	attr  string // attribute name when field is fieldAttr
	op    op
	vals  []string         // literals as written (decoded)
	vers  []semver.Version // parsed literals when field is fieldVersion
}

func (*orNode) isNode()     {}
func (*andNode) isNode()    {}
func (*notNode) isNode()    {}
func (*memberNode) isNode() {}
func (*cmpNode) isNode()    {}

type op int

const (
	opEq op = iota + 1
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opNotIn
)

func (o op) String() string {
	switch o {
	case opEq:
		return "=="
	case opNe:
		return "!="
	case opLt:
		return "<"
	case opLe:
		return "<="
	case opGt:
		return ">"
	case opGe:
		return ">="
	case opIn:
		return "in"
	case opNotIn:
		return "not in"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

type field int

const (
	fieldDeviceType field = iota + 1
	fieldHWRev
	fieldRegion
	fieldTimeZone
	fieldSerial
	fieldState
	fieldProtocol
	fieldID
	fieldVersion
	fieldAttr
)

const fieldList = "device_type, hw_rev, region, time_zone, serial, state, protocol, id, version, attr.NAME"

func lookupField(name string) (field, bool) {
	for f := fieldDeviceType; f < fieldAttr; f++ {
		if f.String() == name {
			return f, true
		}
	}
	return 0, false
}

func (f field) String() string {
	switch f {
	case fieldDeviceType:
		return "device_type"
	case fieldHWRev:
		return "hw_rev"
	case fieldRegion:
		return "region"
	case fieldTimeZone:
		return "time_zone"
	case fieldSerial:
		return "serial"
	case fieldState:
		return "state"
	case fieldProtocol:
		return "protocol"
	case fieldID:
		return "id"
	case fieldVersion:
		return "version"
	case fieldAttr:
		return "attr"
	}
	return fmt.Sprintf("field(%d)", int(f))
}

// Parse parses a filter. Errors are *SyntaxError.
func Parse(src string) (*Expr, error) {
	if len(src) > MaxLength {
		return nil, newSyntaxError(src, MaxLength, fmt.Sprintf("filter is longer than %d bytes", MaxLength))
	}
	toks, err := (&lexer{src: src}).all()
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, newSyntaxError(src, 0, "filter is empty")
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, `unexpected ")" without a matching "("`)
		}
		return nil, p.expected(`"and", "or" or end of filter`)
	}
	return &Expr{root: root}, nil
}

// MustParse is Parse for filters written in code; it panics on error.
func MustParse(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

// UnmarshalText parses text into e, so an Expr can sit in a JSON or
// configuration struct.
func (e *Expr) UnmarshalText(text []byte) error {
	x, err := Parse(string(text))
	if err != nil {
		return err
	}
	*e = *x
	return nil
}

// MarshalText returns the canonical form.
func (e *Expr) MarshalText() ([]byte, error) {
	if e == nil || e.root == nil {
		return nil, errors.New("filter: marshal of an unparsed filter")
	}
	return []byte(e.String()), nil
}

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(t token, kw string) bool {
	return t.kind == tWord && strings.EqualFold(t.val, kw)
}

func (p *parser) errAt(t token, msg string) *SyntaxError {
	return newSyntaxError(p.src, t.off, msg)
}

// expected reports that the current token is not what the grammar wants,
// naming the previous token for context.
func (p *parser) expected(what string) *SyntaxError {
	t := p.peek()
	msg := "expected " + what
	if p.i > 0 {
		prev := p.toks[p.i-1]
		msg += fmt.Sprintf(" after %q", p.src[prev.off:prev.end])
	}
	return p.errAt(t, msg+", found "+p.describe(t))
}

func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tString:
		s := p.src[t.off:t.end]
		if len(s) > 40 {
			n := 40
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			s = s[:n] + `..."`
		}
		return "string " + s
	}
	return fmt.Sprintf("%q", p.src[t.off:t.end])
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errAt(t, fmt.Sprintf("filter nests deeper than %d levels", MaxDepth))
	}
	return nil
}

// or = and { "or" and } .
func (p *parser) or() (node, error) {
	x, err := p.and()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.isKeyword(p.peek(), "or") {
		p.advance()
		y, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	// Flatten "a or (b or c)" so that the canonical form is unique.
	var flat []node
	for _, t := range terms {
		if o, ok := t.(*orNode); ok {
			flat = append(flat, o.terms...)
		} else {
			flat = append(flat, t)
		}
	}
	return &orNode{terms: flat}, nil
}

// and = unary { "and" unary } .
func (p *parser) and() (node, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.isKeyword(p.peek(), "and") {
		p.advance()
		y, err := p.unary()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	var flat []node
	for _, t := range terms {
		if a, ok := t.(*andNode); ok {
			flat = append(flat, a.terms...)
		} else {
			flat = append(flat, t)
		}
	}
	return &andNode{terms: flat}, nil
}

// unary = "not" unary | primary .
func (p *parser) unary() (node, error) {
	t := p.peek()
	if !p.isKeyword(t, "not") {
		return p.primary()
	}
	if err := p.enter(t); err != nil {
		return nil, err
	}
	p.advance()
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	p.depth--
	return &notNode{x: x}, nil
}

// primary = "(" or ")" | membership | comparison .
func (p *parser) primary() (node, error) {
	t := p.peek()
	switch t.kind {
	case tLParen:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		p.advance()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tRParen {
			col := newSyntaxError(p.src, t.off, "").Column
			return nil, p.expected(fmt.Sprintf(`")" to close the "(" at column %d`, col))
		}
		p.advance()
		p.depth--
		return x, nil
	case tTag, tGroup:
		return p.member()
	case tWord:
		for _, kw := range []string{"and", "or", "in"} {
			if p.isKeyword(t, kw) {
				return nil, p.expected("a field, tag: or group:")
			}
		}
		return p.comparison()
	}
	if p.i == 0 && t.kind == tString {
		return nil, p.errAt(t, `expected a field, tag: or group:, found `+p.describe(t)+` (write comparisons as field == "value")`)
	}
	return nil, p.expected("a field, tag: or group:")
}

// membership = ("tag:" | "group:") name . The name follows the colon
// directly, as a bare word or a string.
func (p *parser) member() (node, error) {
	prefix := p.advance()
	what := "tag"
	if prefix.kind == tGroup {
		what = "group"
	}
	t := p.peek()
	if t.off != prefix.end || (t.kind != tWord && t.kind != tString) {
		return nil, p.errAt(t, fmt.Sprintf("expected a %s name right after %q, found %s", what, what+":", p.describe(t)))
	}
	p.advance()
	if t.val == "" {
		return nil, p.errAt(t, what+" name is empty")
	}
	return &memberNode{group: prefix.kind == tGroup, name: t.val}, nil
}

// comparison = field op string | field ["not"] "in" "(" string { "," string } [","] ")" .
func (p *parser) comparison() (node, error) {
	ft := p.advance()
	n := &cmpNode{}
	name := ft.val
	if attr, ok := strings.CutPrefix(name, "attr."); ok {
		if attr == "" {
			return nil, p.errAt(ft, `attribute name missing after "attr."`)
		}
		n.field, n.attr = fieldAttr, attr
	} else if f, ok := lookupField(name); ok {
		n.field = f
	} else {
		hint := ""
		if _, ok := lookupField(strings.ToLower(name)); ok || strings.HasPrefix(strings.ToLower(name), "attr.") {
			hint = "; field names are lower case"
		} else if name == "attr" {
			hint = "; attributes are written attr.NAME"
		}
		return nil, p.errAt(ft, fmt.Sprintf("unknown field %q (want one of %s%s)", name, fieldList, hint))
	}
	t := p.peek()
	switch {
	case t.kind >= tEq && t.kind <= tGe:
		p.advance()
		n.op = [...]op{tEq: opEq, tNe: opNe, tLt: opLt, tLe: opLe, tGt: opGt, tGe: opGe}[t.kind]
		if err := p.value(n); err != nil {
			return nil, err
		}
	case p.isKeyword(t, "in"):
		p.advance()
		n.op = opIn
		if err := p.list(n); err != nil {
			return nil, err
		}
	case p.isKeyword(t, "not") && p.isKeyword(p.toks[p.i+1], "in"):
		p.advance()
		p.advance()
		n.op = opNotIn
		if err := p.list(n); err != nil {
			return nil, err
		}
	default:
		return nil, p.expected("an operator (==, !=, <, <=, >, >=, in, not in)")
	}
	return n, nil
}

func (p *parser) list(n *cmpNode) error {
	if p.peek().kind != tLParen {
		return p.expected(`"(" to start a list of strings`)
	}
	p.advance()
	for {
		if err := p.value(n); err != nil {
			return err
		}
		switch p.peek().kind {
		case tComma:
			p.advance()
			if p.peek().kind == tRParen {
				p.advance()
				return nil
			}
			continue
		case tRParen:
			p.advance()
			return nil
		}
		return p.expected(`"," or ")"`)
	}
}

// value reads one string literal into n, checking version literals.
func (p *parser) value(n *cmpNode) error {
	t := p.peek()
	if t.kind != tString {
		e := p.expected("a string")
		if t.kind == tWord {
			e.Msg += fmt.Sprintf(" (quote values: %s)", quote(t.val))
		}
		return e
	}
	p.advance()
	if n.field == fieldVersion {
		v, err := semver.Parse(t.val)
		if err != nil {
			return p.errAt(t, err.Error())
		}
		n.vers = append(n.vers, v)
	}
	n.vals = append(n.vals, t.val)
	return nil
}
