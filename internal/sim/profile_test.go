package sim_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/sim"
)

// TestLoadExampleProfile keeps the documented example loadable.
func TestLoadExampleProfile(t *testing.T) {
	t.Parallel()
	p, err := sim.LoadProfile(filepath.Join("testdata", "example-profile.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hardware) != 2 || time.Duration(p.Link.Latency) != 20*time.Millisecond || p.InitialVersion != "1.0.0" || len(p.Releases) != 2 {
		t.Fatalf("profile %+v", p)
	}
}

// FuzzParseProfile: any bytes are either refused with an error or parse
// into a profile that validates (no panics, no half-checked profiles).
func FuzzParseProfile(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "example-profile.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := sim.ParseProfile(b)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed profile does not validate: %v", err)
		}
	})
}
