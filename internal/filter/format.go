package filter

import "strings"

// String returns the canonical form of e: lower-case keywords, single
// spaces, double-quoted values, bare tag and group names where possible, and
// only the parentheses that precedence requires. Parse(e.String()) yields an
// equal expression, and its String is the same text.
func (e *Expr) String() string {
	var b strings.Builder
	format(&b, e.root, precOr)
	return b.String()
}

// Binding strength, loosest first.
const (
	precOr = iota
	precAnd
	precNot
)

func format(b *strings.Builder, n node, outer int) {
	switch n := n.(type) {
	case *orNode:
		formatList(b, n.terms, " or ", precOr, outer)
	case *andNode:
		formatList(b, n.terms, " and ", precAnd, outer)
	case *notNode:
		b.WriteString("not ")
		format(b, n.x, precNot)
	case *memberNode:
		if n.group {
			b.WriteString("group:")
		} else {
			b.WriteString("tag:")
		}
		if isBareWord(n.name) {
			b.WriteString(n.name)
		} else {
			b.WriteString(quote(n.name))
		}
	case *cmpNode:
		b.WriteString(n.field.String())
		if n.field == fieldAttr {
			b.WriteByte('.')
			b.WriteString(n.attr)
		}
		b.WriteByte(' ')
		b.WriteString(n.op.String())
		b.WriteByte(' ')
		if n.op == opIn || n.op == opNotIn {
			b.WriteByte('(')
			for i, v := range n.vals {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quote(v))
			}
			b.WriteByte(')')
		} else {
			b.WriteString(quote(n.vals[0]))
		}
	}
}

func formatList(b *strings.Builder, terms []node, sep string, prec, outer int) {
	paren := outer > prec
	if paren {
		b.WriteByte('(')
	}
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		// A nested list of the same kind only arises from parentheses the
		// parser flattened away, so prec+1 is exact.
		format(b, t, prec+1)
	}
	if paren {
		b.WriteByte(')')
	}
}
