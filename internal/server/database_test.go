package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestSQLitePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"DataDir", Config{DataDir: dir}, filepath.Join(dir, "updraft.db")},
		{"DefaultDataDir", Config{}, filepath.Join("updraft-data", "updraft.db")},
		{"Postgres", Config{DataDir: dir, Database: "postgres://db.invalid/updraft"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SQLitePath(tc.cfg)
			if err != nil || got != tc.want {
				t.Fatalf("SQLitePath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := SQLitePath(Config{Database: "mysql://x"}); err == nil {
		t.Fatal("SQLitePath accepted a database URL OpenStore refuses")
	}
}

// TestSQLitePathIsWhereOpenStoreCreates keeps SQLitePath and OpenStore
// agreeing on the file: the migrate command's dry run relies on it.
func TestSQLitePathIsWhereOpenStoreCreates(t *testing.T) {
	t.Parallel()
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "data")}
	path, err := SQLitePath(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("before OpenStore: stat %s: %v, want not found", path, err)
	}
	st, err := OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("OpenStore did not create %s: %v", path, err)
	}
}
