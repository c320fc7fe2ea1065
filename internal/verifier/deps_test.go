package verifier_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the verifier importable by the agent: no server
// package, database driver or HTTP stack may enter its dependencies. The
// fetcher that talks HTTP is injected by the agent.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/updraft/updraft/internal/verifier").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/updraft/updraft/internal/verifier": true,
		"github.com/updraft/updraft/internal/tufmeta":  true,
		"github.com/updraft/updraft/internal/devfs":    true,
		"github.com/updraft/updraft/internal/clock":    true,
	}
	forbidden := []string{"net/http", "database/sql", "modernc.org/", "github.com/jackc/", "github.com/prometheus/"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned %d packages", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/updraft/updraft/") && !allowed[p] {
			t.Errorf("verifier depends on %s", p)
		}
		for _, f := range forbidden {
			if p == strings.TrimSuffix(f, "/") || strings.HasPrefix(p, f) {
				t.Errorf("verifier depends on %s", p)
			}
		}
	}
}
