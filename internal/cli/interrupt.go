package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// interruptedError is a run stopped by Ctrl-C or SIGTERM. It exits
// ExitError, and outcome says what the run had done and what it had not, so
// that an operator knows whether to run the command again.
type interruptedError struct{ outcome string }

func (e *interruptedError) Error() string {
	return "cli: interrupted (Ctrl-C or SIGTERM): " + e.outcome
}

func interruptedf(format string, args ...any) error {
	return &interruptedError{outcome: fmt.Sprintf(format, args...)}
}

// interrupted reports whether the caller's context was cancelled: main
// cancels it on Ctrl-C and SIGTERM. The --timeout deadline is not an
// interrupt: it is reported as a timeout with its own hint.
func (e *env) interrupted() bool {
	return e.parent != nil && errors.Is(e.parent.Err(), context.Canceled)
}

// uninterruptible returns a context for a step that changes Vault: it
// keeps ctx's values and deadline (--timeout) but not its cancellation, so
// that Ctrl-C during the step lets the write finish and the command can
// say what is stored, instead of leaving a write whose outcome nobody
// knows. Callers check [env.interrupted] before and after the step.
func uninterruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	detached := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(detached, d)
	}
	return context.WithCancel(detached)
}

// writeFileAtomic writes data to name through a temporary file in the same
// directory and a rename, so that name holds either its old content or all
// of data, never part of it.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	done = true
	return nil
}
