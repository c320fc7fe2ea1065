//go:build !linux

package reliability

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
