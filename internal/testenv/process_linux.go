package testenv

import "syscall"

// dieWithParent makes the kernel kill the child should the test binary
// die without its cleanups (a -timeout panic), rather than leave it
// running.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
