//go:build !linux

package main

import "errors"

func freeBytes(string) (int64, error) {
	return 0, errors.New("free storage is measured on Linux only")
}
