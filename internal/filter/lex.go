package filter

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF    tokKind = iota
	tWord           // bare word: field, keyword, tag or group name
	tString         // double-quoted string; val holds the decoded value
	tLParen
	tRParen
	tComma
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tTag   // "tag:"
	tGroup // "group:"
)

type token struct {
	kind     tokKind
	val      string // word text or decoded string
	off, end int    // byte offsets in the source
}

// lexer splits a filter into tokens. It never looks at more than MaxLength
// bytes, because Parse checks the length first.
type lexer struct {
	src string
	off int
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isWordByte(c byte) bool { return isWordStart(c) || c == '.' || c == '-' }

// isBareWord reports whether s can be written unquoted as a tag or group name.
func isBareWord(s string) bool {
	if s == "" || !isWordStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

func (l *lexer) errorf(off int, format string, args ...any) *SyntaxError {
	return newSyntaxError(l.src, off, fmt.Sprintf(format, args...))
}

func (l *lexer) all() ([]token, error) {
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			return toks, nil
		}
	}
}

func (l *lexer) next() (token, error) {
	for l.off < len(l.src) {
		switch l.src[l.off] {
		case ' ', '\t', '\n', '\r':
			l.off++
			continue
		}
		break
	}
	start := l.off
	if start == len(l.src) {
		return token{kind: tEOF, off: start, end: start}, nil
	}
	tok := func(k tokKind, n int) (token, error) {
		l.off += n
		return token{kind: k, off: start, end: l.off}, nil
	}
	c := l.src[start]
	peek := byte(0)
	if start+1 < len(l.src) {
		peek = l.src[start+1]
	}
	switch {
	case c == '(':
		return tok(tLParen, 1)
	case c == ')':
		return tok(tRParen, 1)
	case c == ',':
		return tok(tComma, 1)
	case c == '=' && peek == '=':
		return tok(tEq, 2)
	case c == '=':
		return token{}, l.errorf(start, `unexpected "=" (use "==" to compare)`)
	case c == '!' && peek == '=':
		return tok(tNe, 2)
	case c == '!':
		return token{}, l.errorf(start, `unexpected "!" (use "not" or "!=")`)
	case c == '<' && peek == '=':
		return tok(tLe, 2)
	case c == '<':
		return tok(tLt, 1)
	case c == '>' && peek == '=':
		return tok(tGe, 2)
	case c == '>':
		return tok(tGt, 1)
	case c == '"':
		return l.string()
	case isWordStart(c):
		return l.word()
	case c == '\'':
		return token{}, l.errorf(start, `unexpected "'" (strings use double quotes)`)
	}
	r, size := utf8.DecodeRuneInString(l.src[start:])
	if r == utf8.RuneError && size == 1 {
		return token{}, l.errorf(start, "invalid UTF-8")
	}
	if r == '“' || r == '”' {
		return token{}, l.errorf(start, "unexpected %q (strings use straight double quotes)", r)
	}
	return token{}, l.errorf(start, "unexpected character %s", describeRune(r))
}

func describeRune(r rune) string {
	if unicode.IsPrint(r) {
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("%U", r)
}

func (l *lexer) word() (token, error) {
	start := l.off
	for l.off < len(l.src) && isWordByte(l.src[l.off]) {
		l.off++
	}
	w := l.src[start:l.off]
	if l.off < len(l.src) && l.src[l.off] == ':' {
		switch strings.ToLower(w) {
		case "tag":
			l.off++
			return token{kind: tTag, val: w, off: start, end: l.off}, nil
		case "group":
			l.off++
			return token{kind: tGroup, val: w, off: start, end: l.off}, nil
		}
		return token{}, l.errorf(start, `unknown prefix "%s:" (want "tag:" or "group:"; quote names that contain ":")`, w)
	}
	return token{kind: tWord, val: w, off: start, end: l.off}, nil
}

// string decodes a double-quoted string with the escapes \" \\ \/ \n \r \t
// and \uXXXX. Raw control characters and U+0000 are rejected.
func (l *lexer) string() (token, error) {
	start := l.off
	l.off++ // opening quote
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return token{}, l.errorf(start, "unterminated string")
		}
		c := l.src[l.off]
		switch {
		case c == '"':
			l.off++
			return token{kind: tString, val: b.String(), off: start, end: l.off}, nil
		case c == '\\':
			if err := l.escape(&b); err != nil {
				return token{}, err
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(l.src[l.off:])
		if r == utf8.RuneError && size == 1 {
			return token{}, l.errorf(l.off, "invalid UTF-8 in string")
		}
		if unicode.IsControl(r) {
			if r == '\n' {
				return token{}, l.errorf(l.off, `newline in string (use "\n")`)
			}
			return token{}, l.errorf(l.off, `control character %U in string (use "\u%04X")`, r, r)
		}
		b.WriteString(l.src[l.off : l.off+size])
		l.off += size
	}
}

func (l *lexer) escape(b *strings.Builder) error {
	at := l.off
	if at+1 >= len(l.src) {
		return l.errorf(at, "unterminated string")
	}
	switch e := l.src[at+1]; e {
	case '"', '\\', '/':
		b.WriteByte(e)
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		if at+6 > len(l.src) {
			return l.errorf(at, `escape "\u" needs four hex digits`)
		}
		var r rune
		for _, h := range []byte(l.src[at+2 : at+6]) {
			var d byte
			switch {
			case h >= '0' && h <= '9':
				d = h - '0'
			case h >= 'a' && h <= 'f':
				d = h - 'a' + 10
			case h >= 'A' && h <= 'F':
				d = h - 'A' + 10
			default:
				return l.errorf(at, `escape "\u" needs four hex digits`)
			}
			r = r<<4 | rune(d)
		}
		if r == 0 {
			return l.errorf(at, `strings cannot contain U+0000`)
		}
		if r >= 0xD800 && r <= 0xDFFF {
			return l.errorf(at, `escape "\u%04X" is a lone surrogate`, r)
		}
		b.WriteRune(r)
		l.off += 6
		return nil
	default:
		r, _ := utf8.DecodeRuneInString(l.src[at+1:])
		return l.errorf(at, `unknown escape "\%s" in string`, string(r))
	}
	l.off += 2
	return nil
}

// quote writes s as a string literal that the lexer reads back as s.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
