//go:build !linux

package vaulttest

import "os/exec"

// setProcAttr does nothing outside Linux: Pdeathsig is Linux-only.
func setProcAttr(*exec.Cmd) {}
