// Package filter implements the device filter language used by device
// search and campaign targeting, for example
//
//	device_type == "gw-200" and hw_rev in ("B", "C") and version < "2.4.0" and tag:lab
//
// There is one parser (Parse) and two evaluators that must agree: Match
// evaluates an expression against a Subject in Go, and SQL compiles it into
// a WHERE fragment over the devices table for SQLite or PostgreSQL. The
// language is specified in docs/filter-language.md.
//
// Invariants:
//   - An *Expr is immutable once parsed and safe for concurrent use.
//   - Every value written in a filter reaches SQL only as a bind parameter.
//     The only filter text spliced into SQL is an attribute name, which the
//     parser restricts to [A-Za-z0-9_.-].
//   - Version comparisons use semver precedence: in Go through
//     semver.Compare, in SQL through the devices.version_key column, which
//     must hold semver.Key of the device's version, or the empty string when
//     it has none (or a version that is not semantic).
//   - A comparison on a missing attribute or an absent version is false
//     whatever the operator (including != and not in); "not" is plain
//     boolean negation. The SQL keeps this two-valued despite NULLs.
//   - Strings compare byte-wise (Go string order, SQLite BINARY,
//     PostgreSQL "C" collation).
//   - Input is bounded: MaxLength bytes and MaxDepth nesting levels.
package filter
