//go:build !linux

package regtest

import "syscall"

// procAttr: only Linux can tie a child's life to its parent; elsewhere Stop must run.
func procAttr() *syscall.SysProcAttr { return nil }
