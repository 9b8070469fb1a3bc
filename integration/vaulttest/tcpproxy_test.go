package vaulttest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// echoServer answers each line with its name and the line.
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, name+":"+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// deadAddr returns a loopback address that refuses connections.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func roundTrip(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestLoopbackProxyFailsOverToTheNextLiveBackend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := echoServer(t, "a"), echoServer(t, "b")
	defer a.Close()
	defer b.Close()
	dead := deadAddr(t)

	p, err := NewLoopbackProxy(a.Addr().String(), b.Addr().String())
	require.NoError(t, err)
	defer p.Close()
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, p.URL())

	got, err := roundTrip(t, p.Addr(), "one")
	require.NoError(t, err)
	assert.Equal(t, "a:one\n", got, "the first backend is preferred")
	assert.Zero(t, p.Stats().Failovers)

	require.NoError(t, p.SetBackends(dead, b.Addr().String()))
	got, err = roundTrip(t, p.Addr(), "two")
	require.NoError(t, err)
	assert.Equal(t, "b:two\n", got, "a dead backend is skipped")
	assert.Equal(t, int64(1), p.Stats().Failovers)

	require.NoError(t, p.SetBackends(dead, deadAddr(t)))
	_, err = roundTrip(t, p.Addr(), "three")
	require.Error(t, err, "no live backend: the connection is closed")
	require.Eventually(t, func() bool { return p.Stats().Refused == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(3), p.Stats().Accepted)
}

func TestLoopbackProxyClosesConnectionsWhenTheBackendDies(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	p, err := NewLoopbackProxy(ln.Addr().String())
	require.NoError(t, err)
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy never connected to the backend")
	}
	require.NoError(t, server.Close()) // the node dies
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the client sees the end of the connection, not a hang")
}

func TestLoopbackProxyCloseIsIdempotentAndEndsConnections(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := echoServer(t, "a")
	defer a.Close()
	p, err := NewLoopbackProxy(a.Addr().String())
	require.NoError(t, err)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "x\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "a:x\n", line)

	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "closed by the proxy, not timed out: %v", err)
}

func TestLoopbackProxyRefusesNonLoopbackBackends(t *testing.T) {
	for _, b := range []string{"10.0.0.1:8200", "192.168.1.10:8200", "example.com:8200", "no-port"} {
		_, err := NewLoopbackProxy(b)
		require.Error(t, err, b)
		if b != "no-port" {
			require.ErrorIs(t, err, ErrNotLoopback, b)
		}
	}
	p, err := NewLoopbackProxy("127.0.0.1:1", "[::1]:2", "localhost:3")
	require.NoError(t, err)
	defer p.Close()
	require.ErrorIs(t, p.SetBackends("172.17.0.2:8200"), ErrNotLoopback)
	assert.Equal(t, []string{"127.0.0.1:1", "[::1]:2", "localhost:3"}, p.Backends(), "a refused change leaves the backends alone")
}
