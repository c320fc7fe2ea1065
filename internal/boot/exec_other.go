//go:build !unix

package boot

import "os/exec"

// ownProcessGroup leaves cmd alone where process groups do not exist;
// cancelling kills the program itself.
func ownProcessGroup(*exec.Cmd) {}
