package regtest

import "syscall"

// procAttr makes the kernel kill a daemon when the test process dies without calling Stop
// (a panic, a timeout kill), so no btcd or lnd outlives the run holding ports and files.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
