package otelknotmtls_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: providers,
// Vault logins, clients and the test servers are all closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
