package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
)

type classified struct{ class string }

func (c classified) Error() string      { return "vault: permission denied on secret/data/x" }
func (c classified) ErrorClass() string { return c.class }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "dial tcp: i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestErrorClass(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{provider.ErrClosed, provider.ClassClosed},
		{&provider.CheckError{Err: provider.ErrExpired}, provider.ClassExpired},
		{fmt.Errorf("provider: x: %w", &provider.CheckError{Err: provider.ErrNotYetValid}), provider.ClassNotYetValid},
		{fmt.Errorf("provider: refusing: %w", &provider.CheckError{Err: provider.ErrSubjectCN}), provider.ClassInvalidBundle},
		{fmt.Errorf("provider: fetch: %w", context.DeadlineExceeded), provider.ClassTimeout},
		{fmt.Errorf("provider: fetch: %w", timeoutErr{}), provider.ClassTimeout},
		{fmt.Errorf("%w: string", provider.ErrSourcePanicked), provider.ClassSourcePanic},
		{fmt.Errorf("provider: fetch: %w", classified{provider.ClassPermission}), provider.ClassPermission},
		{errors.New("connection refused"), provider.ClassUnavailable},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, provider.ErrorClass(tc.err), "%v", tc.err)
	}
}

func TestStatusHealth(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	t.Cleanup(provider.SetClock(func() time.Time { return start })) // frozen: the reasons name exact durations
	b := is.bundle(t, start.Add(-time.Hour), start.Add(30*24*time.Hour))
	soon := is.bundle(t, start.Add(-time.Hour), start.Add(2*24*time.Hour))
	veryNear := is.bundle(t, start.Add(-time.Hour), start.Add(30*time.Minute))
	outage := errors.New("connection refused")
	denied := fmt.Errorf("provider: fetch: %w", classified{provider.ClassPermission})
	cases := []struct {
		name   string
		st     provider.Status
		pol    provider.HealthPolicy
		want   provider.HealthState
		reason string
	}{
		{"nothing loaded", provider.Status{}, provider.HealthPolicy{}, provider.Failing, "no certificate loaded"},
		{"nothing loaded, failing source", provider.Status{Failures: 2, LastError: outage}, provider.HealthPolicy{}, provider.Failing, "2 consecutive refresh failure(s), last unavailable"},
		{"closed", provider.Status{Bundle: b, Valid: true, Closed: true}, provider.HealthPolicy{}, provider.Failing, "provider closed"},
		{"expired", provider.Status{Bundle: b, Valid: false, Failures: 1, LastError: &provider.CheckError{Err: provider.ErrExpired}}, provider.HealthPolicy{}, provider.Failing, "is not valid now"},
		{"fresh and refreshing", provider.Status{Bundle: b, Valid: true}, provider.HealthPolicy{}, provider.Healthy, "expires in 720h0m0s"},
		{"a blip is tolerated", provider.Status{Bundle: b, Valid: true, Failures: 2, LastError: outage}, provider.HealthPolicy{}, provider.Healthy, "2 consecutive refresh failure(s), last unavailable"},
		{"an outage is not", provider.Status{Bundle: b, Valid: true, Failures: 3, LastError: outage}, provider.HealthPolicy{}, provider.Degraded, "3 consecutive refresh failure(s)"},
		{"permission denied at once", provider.Status{Bundle: b, Valid: true, Failures: 1, LastError: denied}, provider.HealthPolicy{}, provider.Degraded, "last permission_denied"},
		{"refused bundle at once", provider.Status{Bundle: b, Valid: true, Failures: 1, LastError: &provider.CheckError{Err: provider.ErrKeyMismatch}}, provider.HealthPolicy{}, provider.Degraded, "last invalid_bundle"},
		{"inside the default 14-day window", provider.Status{Bundle: soon, Valid: true}, provider.HealthPolicy{}, provider.Degraded, "under the degraded threshold 336h0m0s"},
		{"window disabled", provider.Status{Bundle: soon, Valid: true}, provider.HealthPolicy{DegradedBelow: -1}, provider.Healthy, "expires in 48h0m0s"},
		{"user window", provider.Status{Bundle: soon, Valid: true}, provider.HealthPolicy{DegradedBelow: 24 * time.Hour}, provider.Healthy, ""},
		{"failing threshold", provider.Status{Bundle: veryNear, Valid: true}, provider.HealthPolicy{FailingBelow: time.Hour}, provider.Failing, "under the failing threshold 1h0m0s"},
		{"failing after failures", provider.Status{Bundle: b, Valid: true, Failures: 10, LastError: outage}, provider.HealthPolicy{FailingAfterFailures: 10}, provider.Failing, "10 consecutive"},
		{"user failure tolerance", provider.Status{Bundle: b, Valid: true, Failures: 5, LastError: outage}, provider.HealthPolicy{DegradedAfterFailures: 6}, provider.Healthy, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.st.Health(tc.pol)
			assert.Equal(t, tc.want, h.State, h.Reason)
			assert.Contains(t, h.Reason, tc.reason)
			assert.Equal(t, tc.st.Failures, h.Failures)
			assert.Equal(t, provider.ErrorClass(tc.st.LastError), h.LastError)
		})
	}
	assert.Equal(t, "healthy degraded failing", fmt.Sprint(provider.Healthy, provider.Degraded, provider.Failing))
}

// TestHealthFollowsTheProvider: a live provider goes healthy -> degraded
// (source down 3 times) -> healthy (recovered) -> failing (closed).
func TestHealthFollowsTheProvider(t *testing.T) {
	is := newIssuer()
	src := &fakeSource{bundle: is.valid(t)}
	p := newProvider(t, src, provider.WithPollInterval(time.Hour))
	assert.Equal(t, provider.Failing, p.Status().Health(provider.HealthPolicy{}).State, "nothing loaded yet")
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	assert.Equal(t, provider.Healthy, p.Status().Health(provider.HealthPolicy{}).State)

	src.set(nil, errors.New("connection refused"))
	for range 3 {
		require.Error(t, p.Refresh(context.Background()))
	}
	h := p.Status().Health(provider.HealthPolicy{})
	assert.Equal(t, provider.Degraded, h.State, h.Reason)
	assert.Equal(t, provider.ClassUnavailable, h.LastError)

	src.set(is.valid(t), nil)
	require.NoError(t, p.Refresh(context.Background()))
	assert.Equal(t, provider.Healthy, p.Status().Health(provider.HealthPolicy{}).State)

	require.NoError(t, p.Close())
	assert.Equal(t, provider.Failing, p.Status().Health(provider.HealthPolicy{}).State)
}
