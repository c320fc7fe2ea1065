package browsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// shots is a test's screenshot folder, shared by its browsers' tabs: files
// are named NN-tab-name.ext, numbered in the order they were saved.
type shots struct {
	// Dir is where this test's screenshots go.
	Dir string

	shotMu sync.Mutex
	shot   int
}

// newShots empties and creates the test's folder under ScreenshotDir.
func newShots(t testing.TB) *shots {
	t.Helper()
	dir := filepath.Join(ScreenshotDir(), safeName(t.Name()))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("clear screenshot folder: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	return &shots{Dir: dir}
}

// save writes data as the next file of tab's and returns its path.
func (s *shots) save(t testing.TB, tab, name, ext string, data []byte) string {
	t.Helper()
	s.shotMu.Lock()
	s.shot++
	n := s.shot
	s.shotMu.Unlock()
	p := filepath.Join(s.Dir, fmt.Sprintf("%02d-%s-%s%s", n, safeName(tab), safeName(name), ext))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("save %s: %v", p, err)
	}
	return p
}
