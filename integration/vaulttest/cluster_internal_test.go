package vaulttest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRunner is a nodeRunner that runs nothing.
type fakeRunner struct{ addr string }

func (f fakeRunner) start(context.Context) (string, error) { return f.addr, nil }
func (f fakeRunner) hostAddr() string                      { return f.addr }
func (fakeRunner) kill(context.Context) error              { return nil }
func (fakeRunner) pause(context.Context) error             { return nil }
func (fakeRunner) unpause(context.Context) error           { return nil }
func (fakeRunner) terminate(context.Context) error         { return nil }
func (fakeRunner) logs(context.Context) (string, error)    { return "", nil }

func TestClusterNeverPrintsItsSecrets(t *testing.T) {
	const token, key = "hvs.root-token-value", "unseal-key-value-0123"
	p, err := NewLoopbackProxy("127.0.0.1:8200")
	require.NoError(t, err)
	defer p.Close()
	c := &Cluster{Backend: "container test", proxy: p, secrets: &clusterSecrets{rootToken: token, unsealKey: key}}
	c.Nodes = []*Node{{Name: "vault-1", cluster: c, r: fakeRunner{"127.0.0.1:8200"}}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for name, v := range map[string]any{"pointer": c, "node": c.Nodes[0], "secrets": c.secrets} {
			out := fmt.Sprintf(verb, v)
			assert.NotContains(t, out, token, "%s of %s", verb, name)
			assert.NotContains(t, out, key, "%s of %s", verb, name)
			assert.NotContains(t, out, fmt.Sprintf("%x", token), "%s of %s", verb, name)
		}
	}
	assert.Equal(t, "vaulttest.Cluster{container test, addr "+p.URL()+", nodes [vault-1@http://127.0.0.1:8200]}", fmt.Sprint(c))
}

func TestNodeConfigSpeedsUpElections(t *testing.T) {
	hcl := nodeConfig("vault-2", "0.0.0.0:8200", "0.0.0.0:8201", "http://vault-2:8200", "https://vault-2:8201", "/vault/raft")
	for _, want := range []string{
		`storage "raft"`, `node_id = "vault-2"`, `performance_multiplier = 1`, `path = "/vault/raft"`,
		`api_addr = "http://vault-2:8200"`, `cluster_addr = "https://vault-2:8201"`, `tls_disable = true`,
	} {
		assert.Contains(t, hcl, want)
	}
}
