package clitest_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/clitest"
	"github.com/knotmtls/knotmtls/internal/cli"
)

func keyPEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestLeaksKey: a piece of the key is found across line breaks and
// spaces; another key's text and public output are not flagged.
func TestLeaksKey(t *testing.T) {
	key, other := keyPEM(t), keyPEM(t)
	lines := strings.Split(key, "\n")
	require.Greater(t, len(lines), 4)
	piece := lines[2][40:] + "\n    " + lines[3][:20] // spans a line break
	assert.True(t, clitest.LeaksKey("output: "+piece, key))
	assert.True(t, clitest.LeaksKey(key, other, key))
	assert.False(t, clitest.LeaksKey(other, key))
	assert.False(t, clitest.LeaksKey("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", key))
	assert.Empty(t, clitest.KeyChunks("not PEM"))
}

// TestRunner: Args adds the identity flags, Hidden flags reach the command
// but not the result, Observe sees every result, and Interrupt ends a run
// as Ctrl-C does (exit 1).
func TestRunner(t *testing.T) {
	var seen []clitest.Result
	r := &clitest.Runner{ClientID: "acme", Env: "development", Hidden: []string{"--timeout", "0s"},
		Observe: func(res clitest.Result) { seen = append(seen, res) }}
	args := r.Args("status", "--json")
	assert.Equal(t, []string{"status", "--client-id", "acme", "--env", "development", "--json"}, args)
	res := r.Run(context.Background(), nil, args...)
	assert.Equal(t, cli.ExitUsage, res.Code, "the hidden --timeout 0s reached the command")
	assert.Contains(t, res.Stderr, "--timeout must be positive")
	assert.Equal(t, args, res.Args)
	require.Len(t, seen, 1)
	assert.Equal(t, res, seen[0])

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = clitest.Run(ctx, nil, "status", "--client-id", "acme", "--env", "development", "--vault-addr", "http://127.0.0.1:1")
	assert.Equal(t, cli.ExitError, res.Code, res.String())
	assert.Contains(t, res.Stdout, "result:       interrupted (exit 1)")
}

func ExampleRun() {
	r := clitest.Run(context.Background(), nil, "status", "--env", "development")
	fmt.Println("exit", r.Code)
	fmt.Println(strings.SplitN(r.Stderr, "\n", 2)[0])
	// Output:
	// exit 2
	// knotmtls status: --client-id is required (the client_id Knot gave you)
}
