package reliability

import "syscall"

// procAttr makes the server die with the process that started it, so a
// test killed by its timeout leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
