package client

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// PagedJSON writes a list that arrives in pages as one JSON object: the
// fields of the first page other than its items, then every item as it
// arrives, so that a whole report or export never sits in memory.
type PagedJSON struct {
	w       io.Writer
	sep     string
	started bool
}

// NewPagedJSON writes to w.
func NewPagedJSON(w io.Writer) *PagedJSON { return &PagedJSON{w: w} }

// Started reports whether Head has written anything.
func (p *PagedJSON) Started() bool { return p.started }

// Head writes the object's fields. head must marshal with "items":null as
// its last field (an items slice left nil, the cursor omitted).
func (p *PagedJSON) Head(head any) error {
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	text, ok := strings.CutSuffix(string(b), `"items":null}`)
	if !ok {
		return fmt.Errorf("unexpected list header %s", b)
	}
	p.started = true
	_, err = io.WriteString(p.w, text+`"items":[`)
	return err
}

// Item writes one element of the items array.
func (p *PagedJSON) Item(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(p.w, p.sep+"\n"+string(b)); err != nil {
		return err
	}
	p.sep = ","
	return nil
}

// Close ends the items array and the object.
func (p *PagedJSON) Close() error {
	_, err := io.WriteString(p.w, "\n]}\n")
	return err
}
