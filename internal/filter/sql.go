package filter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/updraft/updraft/internal/semver"
)

// Engine is a SQL database flavour. Each Engine is also a Dialect with the
// devices table aliased "d" and, on PostgreSQL, placeholders from $1.
type Engine int

const (
	// SQLite: '?' placeholders, json_extract for attributes.
	SQLite Engine = iota + 1
	// Postgres: $n placeholders, jsonb ->> for attributes.
	Postgres
)

func (e Engine) String() string {
	switch e {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Engine(%d)", int(e))
}

// SQLConfig returns the engine's defaults: alias "d", no argument offset.
func (e Engine) SQLConfig() Config { return Config{Engine: e} }

// Dialect says how SQL writes its fragment. Engine and Config implement it.
type Dialect interface {
	SQLConfig() Config
}

// Config is a Dialect with every setting spelled out.
type Config struct {
	Engine Engine
	// Alias is how the caller's query names the devices table; "" means
	// "d". It must be a plain SQL identifier.
	Alias string
	// ArgOffset is the number of bind arguments that precede the fragment
	// in the caller's query: PostgreSQL placeholders start at
	// $ArgOffset+1. SQLite's '?' placeholders are positional and ignore it.
	ArgOffset int
	// QuestionMarks makes PostgreSQL fragments use '?' placeholders too,
	// for callers that write the whole query with '?' and renumber it
	// afterwards; ArgOffset is then ignored. (The fragment has no '?'
	// outside placeholders, and its quoted parts are ordinary SQL quotes.)
	QuestionMarks bool
}

// SQLConfig returns c.
func (c Config) SQLConfig() Config { return c }

// SQL compiles e into a boolean SQL expression over the devices table and
// the values to bind to its placeholders, in order. The fragment is
// parenthesized where needed, so it can be joined to other conditions with
// AND. It does not restrict the tenant: the caller adds
// "d.tenant_id = ?" itself; tag and group look-ups follow d.tenant_id.
//
// It panics if d names an unknown engine, an alias that is not a plain
// identifier, or a negative offset: those are programming errors.
func (e *Expr) SQL(d Dialect) (where string, args []any) {
	c := d.SQLConfig()
	if c.Alias == "" {
		c.Alias = "d"
	}
	if c.Engine != SQLite && c.Engine != Postgres {
		panic(fmt.Sprintf("filter: SQL for unknown engine %v", c.Engine))
	}
	if !isIdentifier(c.Alias) {
		panic(fmt.Sprintf("filter: SQL alias %q is not a plain identifier", c.Alias))
	}
	if c.ArgOffset < 0 {
		panic(fmt.Sprintf("filter: negative SQL argument offset %d", c.ArgOffset))
	}
	s := &sqlWriter{c: c}
	s.node(e.root)
	return s.b.String(), s.args
}

func isIdentifier(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

type sqlWriter struct {
	c    Config
	b    strings.Builder
	args []any
}

func (s *sqlWriter) arg(v string) {
	s.args = append(s.args, v)
	if s.c.Engine == Postgres && !s.c.QuestionMarks {
		s.b.WriteByte('$')
		s.b.WriteString(strconv.Itoa(s.c.ArgOffset + len(s.args)))
		return
	}
	s.b.WriteByte('?')
}

func (s *sqlWriter) col(name string) {
	s.b.WriteString(s.c.Alias)
	s.b.WriteByte('.')
	s.b.WriteString(name)
}

func (s *sqlWriter) node(n node) {
	switch n := n.(type) {
	case *orNode:
		s.list(n.terms, " OR ")
	case *andNode:
		s.list(n.terms, " AND ")
	case *notNode:
		// Comparisons on missing attributes are NULL in SQL; treating NULL
		// as false before negating keeps the logic two-valued like Match.
		// AND and OR need no such care: NULL behaves as false through them.
		s.b.WriteString("NOT COALESCE(")
		s.node(n.x)
		s.b.WriteString(", FALSE)")
	case *memberNode:
		s.member(n)
	case *cmpNode:
		s.compare(n)
	}
}

func (s *sqlWriter) list(terms []node, sep string) {
	s.b.WriteByte('(')
	for i, t := range terms {
		if i > 0 {
			s.b.WriteString(sep)
		}
		s.node(t)
	}
	s.b.WriteByte(')')
}

func (s *sqlWriter) member(n *memberNode) {
	// The subquery alias is derived from the caller's, so it never shadows it.
	table, alias, col := "device_tags", s.c.Alias+"_tag", "tag"
	if n.group {
		table, alias, col = "device_group_members", s.c.Alias+"_grp", "group_name"
	}
	fmt.Fprintf(&s.b, "EXISTS (SELECT 1 FROM %s %s WHERE %s.tenant_id = %s.tenant_id AND %s.device_id = %s.id AND %s.%s = ",
		table, alias, alias, s.c.Alias, alias, s.c.Alias, alias, col)
	s.arg(n.name)
	s.b.WriteByte(')')
}

func (s *sqlWriter) compare(n *cmpNode) {
	vals := n.vals
	if n.field == fieldVersion {
		vals = make([]string, len(n.vers))
		for i, v := range n.vers {
			vals[i] = semver.Key(v)
		}
		// '' (no version) sorts below every key and equals none, so only
		// these operators need to exclude it explicitly.
		if n.op == opNe || n.op == opNotIn || n.op == opLt || n.op == opLe {
			s.b.WriteByte('(')
			s.col("version_key")
			s.b.WriteString(" <> '' AND ")
			s.compareTo(n, vals)
			s.b.WriteByte(')')
			return
		}
	}
	s.compareTo(n, vals)
}

func (s *sqlWriter) compareTo(n *cmpNode, vals []string) {
	s.operand(n)
	switch n.op {
	case opIn, opNotIn:
		if n.op == opIn {
			s.b.WriteString(" IN (")
		} else {
			s.b.WriteString(" NOT IN (")
		}
		for i, v := range vals {
			if i > 0 {
				s.b.WriteString(", ")
			}
			s.arg(v)
		}
		s.b.WriteByte(')')
		return
	case opLt, opLe, opGt, opGe:
		// Order byte-wise whatever the column's or database's collation.
		if s.c.Engine == Postgres {
			s.b.WriteString(` COLLATE "C"`)
		} else {
			s.b.WriteString(" COLLATE BINARY")
		}
	}
	s.b.WriteString(map[op]string{opEq: " = ", opNe: " <> ", opLt: " < ", opLe: " <= ", opGt: " > ", opGe: " >= "}[n.op])
	s.arg(vals[0])
}

// operand writes the SQL expression for the compared field.
func (s *sqlWriter) operand(n *cmpNode) {
	switch n.field {
	case fieldAttr:
		// n.attr matches [A-Za-z0-9_.-]+ (the parser's word syntax), so it
		// cannot break out of the quoted JSON path or string literal.
		if s.c.Engine == Postgres {
			s.b.WriteByte('(')
			s.col("attributes")
			fmt.Fprintf(&s.b, "::jsonb ->> '%s')", n.attr)
		} else {
			s.b.WriteString("json_extract(")
			s.col("attributes")
			fmt.Fprintf(&s.b, `, '$."%s"')`, n.attr)
		}
	case fieldVersion:
		s.col("version_key")
	default:
		s.col(n.field.String())
	}
}
