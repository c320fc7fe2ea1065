package boot

import (
	"context"
	"fmt"

	"github.com/updraft/updraft/internal/devfs"
)

// CurrentFunc reports the slot the running system booted from.
type CurrentFunc func(ctx context.Context) (string, error)

// DefaultCmdlineKey is the kernel parameter the boot scripts pass the boot
// name in, RAUC's convention.
const DefaultCmdlineKey = "rauc.slot"

// KernelCmdline returns a CurrentFunc that reads the boot name from the
// key=name parameter of the kernel command line stored in file (normally
// /proc/cmdline), read through fsys. An empty key means DefaultCmdlineKey.
// When a parameter repeats, the last one counts, as for the kernel.
func KernelCmdline(fsys devfs.FS, file, key string) CurrentFunc {
	if key == "" {
		key = DefaultCmdlineKey
	}
	return func(context.Context) (string, error) {
		b, err := devfs.ReadFile(fsys, file, 64<<10)
		if err != nil {
			return "", fmt.Errorf("read kernel command line: %w", err)
		}
		v, ok := cmdlineValue(string(b), key)
		if !ok {
			return "", fmt.Errorf("kernel command line in %s has no %s= parameter", file, key)
		}
		if err := CheckSlotName(v); err != nil {
			return "", fmt.Errorf("kernel command line %s=: %w", key, err)
		}
		return v, nil
	}
}

// cmdlineValue returns the value of the last key=value parameter in a
// kernel command line. Parameters are separated by whitespace; double
// quotes group text that contains spaces and are not part of the value,
// as the kernel's own parser treats them.
func cmdlineValue(cmdline, key string) (string, bool) {
	var value string
	found := false
	for _, p := range cmdlineParams(cmdline) {
		if len(p) > len(key) && p[:len(key)] == key && p[len(key)] == '=' {
			value, found = p[len(key)+1:], true
		}
	}
	return value, found
}

func cmdlineParams(s string) []string {
	var params []string
	var cur []byte
	inQuote, started := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			started = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0):
			if started {
				params = append(params, string(cur))
				cur, started = cur[:0], false
			}
		default:
			cur = append(cur, c)
			started = true
		}
	}
	if started {
		params = append(params, string(cur))
	}
	return params
}
