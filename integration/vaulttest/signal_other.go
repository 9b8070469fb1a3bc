//go:build !unix

package vaulttest

import (
	"errors"
	"os"
)

var errNoSignals = errors.New("vaulttest: pausing a process needs SIGSTOP (unix only)")

// signalStop is not supported without unix signals.
func signalStop(*os.Process) error { return errNoSignals }

// signalCont is not supported without unix signals.
func signalCont(*os.Process) error { return errNoSignals }
