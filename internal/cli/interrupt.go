package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// interruptedWrite is the outcome of a Vault write that an interrupt let
// finish (see env.uninterruptible): unknown when it ran out of --timeout,
// notDone (with the reason) when it failed, done when it succeeded.
func interruptedWrite(err error, unknown, notDone, done string) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return interruptedf("%s", unknown)
	case err != nil:
		return interruptedf("%s: %s", notDone, message(err))
	}
	return interruptedf("%s", done)
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
// knows. An interrupt during the step is acknowledged on stderr at once
// ("finishing <what> first"); main restores the default signal handling
// after the first interrupt, so a second Ctrl-C ends the process. Callers
// check [env.interrupted] before and after the step; done ends the step
// and must be called before the command writes anything else.
func (e *env) uninterruptible(ctx context.Context, what string) (_ context.Context, done func()) {
	detached := context.WithoutCancel(ctx)
	var cancel context.CancelFunc
	if d, ok := ctx.Deadline(); ok {
		detached, cancel = context.WithDeadline(detached, d)
	} else {
		detached, cancel = context.WithCancel(detached)
	}
	var (
		once sync.Once
		ack  = func() {
			fmt.Fprintf(e.stderr, "knotmtls: interrupted: finishing %s first (within --timeout); Ctrl-C again ends at once, leaving its outcome unknown\n", what)
		}
		ended = make(chan struct{})
		wg    sync.WaitGroup
	)
	parent := e.parent
	if parent == nil {
		parent = context.Background()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-parent.Done():
			if e.interrupted() {
				once.Do(ack)
			}
		case <-ended:
		}
	}()
	return detached, func() {
		close(ended)
		wg.Wait()
		if e.interrupted() {
			once.Do(ack) // the step ended before the watcher saw the interrupt
		}
		cancel()
	}
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
