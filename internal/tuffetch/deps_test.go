package tuffetch_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the fetcher fit for the agent: only the wire
// messages of the device API, never the server, a database driver or
// metrics.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/updraft/updraft/internal/tuffetch").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/updraft/updraft/internal/tuffetch":       true,
		"github.com/updraft/updraft/internal/deviceapi/wire": true,
		"github.com/updraft/updraft/internal/semver":         true,
	}
	forbidden := []string{"database/sql", "modernc.org/", "github.com/jackc/", "github.com/prometheus/"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned %d packages", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/updraft/updraft/") && !allowed[p] {
			t.Errorf("tuffetch depends on %s", p)
		}
		for _, f := range forbidden {
			if p == strings.TrimSuffix(f, "/") || strings.HasPrefix(p, f) {
				t.Errorf("tuffetch depends on %s", p)
			}
		}
	}
}
