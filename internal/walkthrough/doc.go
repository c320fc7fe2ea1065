// Package walkthrough holds only a test: it runs the README's CLI
// walk-through, command for command, against a real server, so the README
// cannot drift from what the product does.
package walkthrough
