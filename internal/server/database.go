package server

import "path/filepath"

// sqliteFile is the SQLite database's name in the data directory.
const sqliteFile = "updraft.db"

// SQLitePath returns the file of the SQLite database cfg selects (the data
// directory's default applied), or "" when cfg names a PostgreSQL database.
// It touches nothing, so tools can tell whether a database exists before
// opening it (which would create it).
func SQLitePath(cfg Config) (string, error) {
	if err := cfg.setDefaults(); err != nil {
		return "", err
	}
	if cfg.Database != "" {
		return "", nil
	}
	return filepath.Join(cfg.DataDir, sqliteFile), nil
}
