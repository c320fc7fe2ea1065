package signing

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		role    string
		version int64
		ok      bool
	}{
		{"timestamp.json", "timestamp", 0, true},
		{"1.root.json", "root", 1, true},
		{"12.snapshot.json", "snapshot", 12, true},
		{"3.targets.json", "targets", 3, true},
		{"4.gw-200.json", "gw-200", 4, true},
		{"gw-200.json", "gw-200", 0, true},
		{"root.json", "root", 0, true},
		{"9223372036854775807.root.json", "root", 9223372036854775807, true},
		{"9223372036854775808.root.json", "", 0, false},
		{"0.root.json", "", 0, false},
		{"01.root.json", "", 0, false},
		{"1.root", "", 0, false},
		{".json", "", 0, false},
		{"1..json", "", 0, false},
		{"1.json", "1", 0, true}, // a delegated role may be named "1"
		{"../1.root.json", "", 0, false},
		{"1.a/b.json", "", 0, false},
		{"1.gw 200.json", "", 0, false},
		{"1.2.3.json", "2.3", 1, true},
		{"-1.root.json", "-1.root", 0, true},
		{"1.director.json", "", 0, false},
		{strings.Repeat("a", 200) + ".json", "", 0, false},
	} {
		role, v, err := ParseName(tt.name)
		if (err == nil) != tt.ok || role != tt.role || v != tt.version {
			t.Errorf("ParseName(%q) = %q, %d, %v; want %q, %d, ok=%v", tt.name, role, v, err, tt.role, tt.version, tt.ok)
		}
	}
}

// FuzzParseName: names come from device and operator URLs. A name either
// fails or round-trips to the canonical form, and never names anything
// with a path separator.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"timestamp.json", "1.root.json", "4.gw-200.json", "gw-200.json", "0.root.json", "../x.json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		role, v, err := ParseName(name)
		if err != nil {
			return
		}
		if strings.ContainsAny(role, `/\`) || role == "" || v < 0 {
			t.Fatalf("ParseName(%q) = %q, %d", name, role, v)
		}
		canon := role + ".json"
		if v > 0 {
			canon = strconv.FormatInt(v, 10) + "." + canon
		}
		if canon != name {
			t.Fatalf("ParseName(%q) = %q, %d, which is %q", name, role, v, canon)
		}
	})
}

func TestSealer(t *testing.T) {
	t.Parallel()
	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	s, err := newSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN PRIVATE KEY-----\n...")
	sealed, err := s.seal("default", "k1", "snapshot", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain[:20]) {
		t.Fatal("sealed key contains the plain text")
	}
	got, err := s.open("default", "k1", "snapshot", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v", got, err)
	}
	again, _ := s.seal("default", "k1", "snapshot", plain)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same key are equal: the nonce is not random")
	}
	other := bytes.Clone(kek)
	other[0] ^= 1
	o, _ := newSealer(other)
	for _, c := range []struct {
		name             string
		s                *sealer
		tenant, id, role string
		sealed           []byte
	}{
		{"another KEK", o, "default", "k1", "snapshot", sealed},
		{"another key id", s, "default", "k2", "snapshot", sealed},
		{"another role", s, "default", "k1", "director", sealed},
		{"another tenant", s, "acme", "k1", "snapshot", sealed},
		{"flipped bit", s, "default", "k1", "snapshot", append(bytes.Clone(sealed[:len(sealed)-1]), sealed[len(sealed)-1]^1)},
		{"truncated", s, "default", "k1", "snapshot", sealed[:10]},
	} {
		if _, err := c.s.open(c.tenant, c.id, c.role, c.sealed); !errors.Is(err, errWrongKEK) {
			t.Errorf("%s: open = %v, want errWrongKEK", c.name, err)
		}
	}
	if _, err := newSealer(kek[:31]); err == nil {
		t.Fatal("a 31-byte key-encryption key was accepted")
	}
}
