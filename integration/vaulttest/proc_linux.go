package vaulttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the Vault process if the test binary
// dies without running its cleanup.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
