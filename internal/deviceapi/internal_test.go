package deviceapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

var t0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(0.5, 2, 2) // one token per 2 s, burst 2, 2 keys
	steps := []struct {
		key  string
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, false, 2 * time.Second},
		{"a", time.Second, false, time.Second},
		{"a", 2 * time.Second, true, 0},
		{"b", 2 * time.Second, true, 0},
		// Two keys are tracked and neither bucket is full: a third is refused.
		{"c", 2 * time.Second, false, 2 * time.Second},
		// Once "b" has refilled it is dropped to make room.
		{"c", 4 * time.Second, true, 0},
		{"a", 10 * time.Second, true, 0},
	}
	for i, s := range steps {
		ok, wait := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d (%s at %s): allow = %v, %s; want %v, %s", i, s.key, s.at, ok, wait, s.ok, s.wait)
		}
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ remote, want string }{
		{"192.0.2.7:4711", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:4711", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"pipe", "pipe"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = tt.remote
		if got := clientKey(r); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.remote, got, tt.want)
		}
	}
}

func TestNonceCache(t *testing.T) {
	t.Parallel()
	c := newNonceCache(2)
	window := 5 * time.Minute
	steps := []struct {
		nonce string
		at    time.Duration
		want  nonceResult
	}{
		{"n1", 0, nonceFresh},
		{"n1", time.Minute, nonceReplayed},
		{"n2", time.Minute, nonceFresh},
		{"n3", time.Minute, nonceFull}, // n1 and n2 still matter
		{"n3", window, nonceFresh},     // n1 has expired and makes room
		{"n1", window, nonceFull},      // n2 and n3 both still matter
		{"n1", window + time.Minute, nonceFresh},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		if got := c.use(s.nonce, now.Add(window), now); got != s.want {
			t.Fatalf("step %d (%s at %s) = %v, want %v", i, s.nonce, s.at, got, s.want)
		}
	}
}

func TestChooseArtifact(t *testing.T) {
	t.Parallel()
	dev := store.Device{DeviceType: "gw-200", HWRev: "B", Version: "1.0.0"}
	art := func(id, typ, rev, comp, from string) store.Artifact {
		return store.Artifact{ID: id, DeviceType: "gw-200", HWRevs: []string{rev}, Type: store.ArtifactType(typ), Component: comp, FromVersion: from}
	}
	all := func(store.ArtifactType) bool { return true }
	noRaw := func(t store.ArtifactType) bool { return t != store.ArtifactRawImage }
	tests := []struct {
		name     string
		arts     []store.Artifact
		supports func(store.ArtifactType) bool
		want     string // "" for none
	}{
		{"none", nil, all, ""},
		{"other revision", []store.Artifact{art("x", "raw-image", "C", "", "")}, all, ""},
		{"other device type", []store.Artifact{{ID: "x", DeviceType: "gw-300", HWRevs: []string{"B"}, Type: "raw-image"}}, all, ""},
		{"delta from another version", []store.Artifact{art("d", "delta", "B", "", "0.9.0")}, all, ""},
		{"delta from this version", []store.Artifact{art("d", "delta", "B", "", "1.0.0")}, all, "d"},
		{"full before delta", []store.Artifact{art("d", "delta", "B", "", "1.0.0"), art("f", "archive", "B", "", "")}, all, "f"},
		{"type preference", []store.Artifact{art("s", "swu", "B", "", ""), art("r", "raw-image", "B", "", "")}, all, "r"},
		{"unsupported type skipped", []store.Artifact{art("s", "swu", "B", "", ""), art("r", "raw-image", "B", "", "")}, noRaw, "s"},
		{"component then id", []store.Artifact{art("z", "file", "B", "b", ""), art("y", "file", "B", "a", ""), art("x", "file", "B", "a", "")}, all, "x"},
	}
	for _, tt := range tests {
		got, ok := chooseArtifact(tt.arts, dev, tt.supports)
		if (tt.want == "" && ok) || (tt.want != "" && (!ok || got.ID != tt.want)) {
			t.Errorf("%s: got %q (found %v), want %q", tt.name, got.ID, ok, tt.want)
		}
	}
}

func TestPollAfterJitter(t *testing.T) {
	t.Parallel()
	a := &API{limits: Limits{PollInterval: 100 * time.Second, PollJitter: 0.2}}
	seen := map[int]bool{}
	for range 2000 {
		p := a.pollAfter()
		if p < 80 || p > 120 {
			t.Fatalf("poll_after %d outside 80..120", p)
		}
		seen[p] = true
	}
	if len(seen) < 20 {
		t.Fatalf("only %d distinct values in 2000 draws: no jitter", len(seen))
	}
}
