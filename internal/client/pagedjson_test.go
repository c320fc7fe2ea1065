package client_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/updraft/updraft/internal/client"
)

func TestPagedJSONJoinsPagesIntoOneDocument(t *testing.T) {
	type item struct{ ID int }
	type page struct {
		At    string `json:"at"`
		Items []item `json:"items"`
	}
	var b bytes.Buffer
	out := client.NewPagedJSON(&b)
	if err := out.Head(page{At: "now"}); err != nil {
		t.Fatal(err)
	}
	for _, it := range []item{{1}, {2}, {3}} {
		if err := out.Item(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	var got page
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, b.String())
	}
	if got.At != "now" || len(got.Items) != 3 || got.Items[2].ID != 3 {
		t.Fatalf("got %+v", got)
	}
	// An empty list is still a valid document.
	b.Reset()
	out = client.NewPagedJSON(&b)
	if err := out.Head(page{At: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil || json.Unmarshal(b.Bytes(), &got) != nil || len(got.Items) != 0 {
		t.Fatalf("empty list: %v %s", err, b.String())
	}
	// A head whose items are not last and null is refused.
	if err := client.NewPagedJSON(&b).Head(page{Items: []item{{1}}}); err == nil {
		t.Fatal("a head with items was accepted")
	}
}
