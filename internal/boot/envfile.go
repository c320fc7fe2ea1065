package boot

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// maxEnvFile bounds the simulated bootloader's environment file; real
// U-Boot environments are 8 to 256 KiB.
const maxEnvFile = 256 << 10

// parseEnvFile reads the simulated bootloader's environment: one
// name=value per line, names of [A-Za-z0-9_.-], values without NUL or
// newline, no name twice. Empty lines are ignored.
func parseEnvFile(b []byte) (vars, error) {
	if len(b) > maxEnvFile {
		return nil, fmt.Errorf("environment larger than %d bytes", maxEnvFile)
	}
	v := vars{}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return nil, fmt.Errorf("environment line %d: no '='", i+1)
		}
		if !validVarName(string(name)) {
			return nil, fmt.Errorf("environment line %d: invalid variable name %q", i+1, name)
		}
		if bytes.IndexByte(value, 0) >= 0 {
			return nil, fmt.Errorf("environment line %d: NUL in value", i+1)
		}
		if _, dup := v[string(name)]; dup {
			return nil, fmt.Errorf("environment line %d: %s set twice", i+1, name)
		}
		v[string(name)] = string(value)
	}
	return v, nil
}

// formatEnvFile writes v sorted by name, leaving out empty values.
func formatEnvFile(v vars) ([]byte, error) {
	var b bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(v)) {
		value := v[name]
		if value == "" {
			continue
		}
		if !validVarName(name) || strings.ContainsAny(value, "\n\x00") {
			return nil, fmt.Errorf("cannot store variable %q=%q", name, value)
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	if b.Len() > maxEnvFile {
		return nil, fmt.Errorf("environment larger than %d bytes", maxEnvFile)
	}
	return b.Bytes(), nil
}

func validVarName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range []byte(s) {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '.', r == '-':
		default:
			return false
		}
	}
	return true
}
