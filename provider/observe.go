package provider

import "time"

// Attempt reports one refresh attempt that asked the source (a version
// check, a fetch, or both), to the functions registered with
// [Provider.NotifyAttempt]. Polls answered from the cache and attempts
// aborted by Close are not reported.
type Attempt struct {
	// Err is nil on success; on failure it is the error the attempt
	// returned (classify it with [ErrorClass]).
	Err error
	// Duration is how long the attempt took, source calls and checks
	// included.
	Duration time.Duration
}

type attemptListener struct {
	h  *hook
	fn func(Attempt)
}

// NotifyAttempt registers fn to be called after every refresh attempt that
// asked the source, successful or not, until stop is called: metrics count
// attempts and failures from it (see the otelknotmtls module). fn runs on the
// refreshing goroutine after the attempt's outcome is visible in
// [Provider.Status]: it must not block; a panic in it is recovered and logged
// as for [OnRotated]. Like [Provider.Notify] it panics when fn is nil. The
// handshake hook never calls it.
func (p *Provider) NotifyAttempt(fn func(Attempt)) (stop func()) {
	if fn == nil {
		panic("provider: NotifyAttempt called with a nil func")
	}
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	if p.attemptListeners == nil {
		p.attemptListeners = map[uint64]attemptListener{}
	}
	p.attemptListeners[id] = attemptListener{h: newHook("NotifyAttempt", fn), fn: fn}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.attemptListeners, id)
		p.mu.Unlock()
	}
}

// attempted reports a to the attempt listeners.
func (p *Provider) attempted(a Attempt) {
	p.mu.Lock()
	ls := make([]attemptListener, 0, len(p.attemptListeners))
	for _, l := range p.attemptListeners {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		p.run(l.h, func() { l.fn(a) })
	}
}
