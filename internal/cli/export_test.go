package cli

import "io"

// Internal helpers exported to the external test package.
var FlagWords = flagWords

// ReportError prints err as a command does and returns its exit code.
func ReportError(w io.Writer, cmd string, err error) int {
	reportError(w, cmd, err)
	return ExitCodeOf(err)
}
