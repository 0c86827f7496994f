//go:build !linux

package testenv

import "syscall"

// dieWithParent has no equivalent outside Linux: a child outlives a test
// binary that dies without its cleanups.
func dieWithParent() *syscall.SysProcAttr { return nil }
