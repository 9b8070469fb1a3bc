package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs main instead of the tests when the test binary is started
// by TestCtrlCExitsOne as the knotmtls command.
func TestMain(m *testing.M) {
	if os.Getenv("KNOTMTLS_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"knotmtls"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

// TestCtrlCExitsOne: the knotmtls process, sent SIGINT (Ctrl-C) or
// SIGTERM while it waits on a Vault that does not answer, exits 1 and says
// it was interrupted and changed nothing.
func TestCtrlCExitsOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan struct{}, 16)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "csr", "--client-id", "acme", "--env", "development")
			cmd.Env = append(os.Environ(), "KNOTMTLS_TEST_RUN_MAIN=1", "VAULT_ADDR=http://"+ln.Addr().String(),
				"VAULT_TOKEN=s.unused", "VAULT_MAX_RETRIES=0", "VAULT_SKIP_VERIFY=", "VAULT_TLS_SKIP_VERIFY=")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Start())
			select {
			case <-accepted:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("knotmtls never connected to Vault:\n%s", stderr.String())
			}
			require.NoError(t, cmd.Process.Signal(sig))
			err := cmd.Wait()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "exit status expected, got %v; stderr:\n%s", err, stderr.String())
			assert.Equal(t, 1, exit.ExitCode(), stderr.String())
			assert.Contains(t, stderr.String(), "knotmtls csr: cli: interrupted (Ctrl-C or SIGTERM): nothing was changed: no key was stored in Vault and no CSR was written")
			assert.Empty(t, stdout.String())
		})
	}
}
