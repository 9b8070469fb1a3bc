package vaultauth

// SetJitter sets the randomization of backoff waits for a test and returns
// a function restoring it. Tests that check exact schedules use 0.
func SetJitter(f float64) (restore func()) {
	old := jitter
	jitter = f
	return func() { jitter = old }
}
