//go:build unix

package vaulttest

import (
	"os"
	"syscall"
)

// signalStop freezes the process (SIGSTOP).
func signalStop(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// signalCont resumes a frozen process (SIGCONT).
func signalCont(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
