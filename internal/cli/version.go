package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func versionCommand() *command {
	return &command{
		name:  "version",
		short: "print the version of this binary",
		run: func(_ context.Context, e *Env, _ []string) error {
			fmt.Fprintf(e.Stdout, "updraft %s\n", Version())
			return nil
		},
	}
}

// Version describes this binary: its module version (or "devel"), the VCS
// revision it was built from when known, and the Go toolchain and platform.
func Version() string {
	v, rev, dirty := "devel", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev
		if dirty {
			v += "+dirty"
		}
		v += ")"
	}
	return fmt.Sprintf("%s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
