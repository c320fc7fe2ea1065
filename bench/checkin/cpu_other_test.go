//go:build !unix

package checkinbench

import "time"

// processCPU cannot be read here; the benchmark then prints no CPU figures.
func processCPU() (time.Duration, bool) { return 0, false }
