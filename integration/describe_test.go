package integration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// assertNoKeyBytes fails when text holds any piece of the private keys
// stored in the KV v2 secret secret/path (every version), or any PEM block.
func (e *vsEnv) assertNoKeyBytes(t *testing.T, path, text string) {
	t.Helper()
	assert.NotContains(t, text, "-----BEGIN", "a description holds no PEM")
	meta, err := e.client.KVv2("secret").GetMetadata(t.Context(), path)
	require.NoError(t, err)
	flat := strings.Join(strings.Fields(text), "")
	checked := 0
	for v := 1; v <= meta.CurrentVersion; v++ {
		sec, err := e.client.KVv2("secret").GetVersion(t.Context(), path, v)
		require.NoError(t, err)
		for _, field := range []string{"private_key", "pending_private_key"} {
			k, _ := sec.Data[field].(string)
			for _, c := range keyChunks(k) {
				require.NotContains(t, flat, c, "version %d field %s leaked", v, field)
				checked++
			}
		}
	}
	require.Positive(t, checked, "there were stored keys to check against")
}

// TestDescribeKVRotation proves KV.Describe against real Vault: no
// rotation after provisioning, pending=true once a new key is staged with
// ProvisionRotate on an already provisioned secret, false again after the
// import promotes it, with the KV v2 version at each step; a missing
// secret is described as absent, not as an error. No description holds
// key bytes.
func TestDescribeKVRotation(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const path = "knot/describe-kv"
	kv, _ := e.provisionKV(t, "secret", path)

	d, err := kv.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.KVDescription{Exists: true, Version: 2, HasPrivateKey: true, HasCertificate: true}, d)

	// Stage a rotation on the provisioned secret.
	_, err = vaultsource.ProvisionKV(ctx, e.client, "secret", path, e.knot.ClientID(), vaultsource.ProvisionNew)
	require.ErrorIs(t, err, vaultsource.ErrKeyExists)
	csr2, err := vaultsource.ProvisionKV(ctx, e.client, "secret", path, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.NoError(t, err)
	d, err = kv.Describe(ctx)
	require.NoError(t, err)
	assert.True(t, d.Pending, "a staged key is a rotation in progress")
	assert.Equal(t, 3, d.Version)
	assert.True(t, d.HasPrivateKey && d.HasCertificate, "the current key and certificate keep serving")
	descriptions := fmt.Sprintf("%+v %#v", d, d)

	// The same through KV.Provision: a second staged key is refused and the
	// description does not change.
	rotating, err := vaultsource.NewKV(e.client, "secret", path)
	require.NoError(t, err)
	_, err = rotating.Provision(ctx, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.ErrorIs(t, err, vaultsource.ErrKeyExists)
	again, err := rotating.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, d, again)

	cert2, err := e.knot.SignCSR(csr2)
	require.NoError(t, err)
	require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), cert2, nil)))
	d, err = kv.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.KVDescription{Exists: true, Version: 4, HasPrivateKey: true, HasCertificate: true}, d,
		"the import promoted the staged key: no rotation pending")
	descriptions += fmt.Sprintf("%+v %#v", d, d)
	e.assertNoKeyBytes(t, path, descriptions)

	missing, err := vaultsource.NewKV(e.client, "secret", "knot/describe-nothing")
	require.NoError(t, err)
	d, err = missing.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.KVDescription{}, d)
}

// TestDescribeTransitVersions proves Transit.Describe and
// ImportCertificate (its KeyVersion) against real Vault: the versions with a
// certificate and the pending rotation at each step, and that importing a
// certificate for an older key version, while a newer one already has a
// certificate, reports the older version it was stored on (Version still
// names the newer one the source presents).
func TestDescribeTransitVersions(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	require.NoError(t, e.vault.EnableTransit(ctx))
	const key = "knot-describe"

	none, err := vaultsource.NewTransit(e.client, "transit", "knot-describe-nothing")
	require.NoError(t, err)
	d, err := none.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.TransitDescription{}, d, "a missing key is described as absent")

	tr, _ := e.provisionTransit(t, key)
	d, err = tr.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.TransitDescription{Exists: true, Type: "rsa-2048", LatestVersion: 1,
		Versions: []int{1}, CertifiedVersions: []int{1}}, d)

	csr2, err := vaultsource.ProvisionTransit(ctx, e.client, "transit", key, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.NoError(t, err)
	d, err = tr.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.TransitDescription{Exists: true, Type: "rsa-2048", LatestVersion: 2,
		Versions: []int{1, 2}, CertifiedVersions: []int{1}, Pending: true}, d, "version 2 waits for its certificate")

	cert2, err := e.knot.SignCSR(csr2)
	require.NoError(t, err)
	v, err := tr.ImportCertificate(ctx, e.requirements(), cert2, nil)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.Imported{KeyVersion: 2}, v)
	d, err = tr.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, d.CertifiedVersions)
	assert.False(t, d.Pending)

	// Renew the older version 1 while version 2 has a certificate.
	pinned, err := vaultsource.NewTransit(e.client, "transit", key, vaultsource.WithKeyVersion(1))
	require.NoError(t, err)
	csr1, err := pinned.CSR(ctx, e.knot.ClientID())
	require.NoError(t, err)
	cert1, err := e.knot.SignCSR(csr1)
	require.NoError(t, err)
	v, err = tr.ImportCertificate(ctx, e.requirements(), cert1, nil)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.Imported{KeyVersion: 1}, v, "stored on the version the certificate belongs to, not the latest")
	v, err = tr.ImportCertificate(ctx, e.requirements(), cert1, nil)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.Imported{KeyVersion: 1, Unchanged: true}, v, "the same certificate again: nothing written")
	served, err := tr.Version(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(served, "transit:"+key+":v2:"), "the source still presents version 2: %s", served)
	b1, err := pinned.Fetch(ctx)
	require.NoError(t, err)
	leaf1, err := provider.ParseCertificates(cert1)
	require.NoError(t, err)
	assert.True(t, b1.Leaf().Equal(leaf1[0]), "version 1 holds the renewed certificate")

	// A certificate of another key stores nothing and reports no version.
	other, _ := e.provisionKV(t, "secret", "knot/describe-other")
	ob, err := other.Fetch(ctx)
	require.NoError(t, err)
	v, err = tr.ImportCertificate(ctx, e.requirements(), provider.EncodeCertificates(ob.Chain), nil)
	require.ErrorIs(t, err, provider.ErrKeyMismatch)
	assert.Zero(t, v)

	d, err = tr.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaultsource.TransitDescription{Exists: true, Type: "rsa-2048", LatestVersion: 2,
		Versions: []int{1, 2}, CertifiedVersions: []int{1, 2}}, d)
	text := fmt.Sprintf("%+v %#v", d, d)
	assert.NotContains(t, text, "-----BEGIN")
	assert.NotContains(t, text, "KEY")
}

// TestCLIStatusRotation proves that status shows a rotation in progress,
// in text and in --json ("rotation": {"pending": ...}), for KV and
// Transit without changing the exit code, and that import --transit prints
// the key version the certificate was stored on, also for an older one.
// The CLI environment checks every output for stored key bytes at the end.
func TestCLIStatusRotation(t *testing.T) {
	e := newCLIEnv(t)
	require.NoError(t, e.vault.EnableTransit(t.Context()))

	status := func(extra ...string) (cli.StatusReport, map[string]json.RawMessage) {
		t.Helper()
		r := e.run(e.cmd("status", append(extra, "--json")...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		var rep cli.StatusReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw))
		return rep, raw
	}
	signed := 0
	csrAndImport := func(csrArgs []string, importArgs ...string) cliResult {
		t.Helper()
		r := e.run(e.cmd("csr", csrArgs...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		signed++
		certFile, _ := e.sign(fmt.Sprintf("cert-%d.pem", signed), []byte(r.stdout))
		r = e.run(e.cmd("import", append(importArgs, "--cert", certFile)...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		return r
	}

	// KV: a staged key is a rotation in progress until its import.
	csrAndImport(nil)
	rep, raw := status()
	require.Contains(t, raw, "rotation")
	assert.JSONEq(t, `{"pending":false,"secret_version":2}`, string(raw["rotation"]))
	assert.Equal(t, "2", rep.Store.Version)

	r := e.run(e.cmd("csr", "--rotate")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csr2 := []byte(r.stdout)
	rep, raw = status()
	assert.JSONEq(t, `{"pending":true,"secret_version":3,"pending_field":"pending_private_key"}`, string(raw["rotation"]))
	assert.Equal(t, cli.ResultOK, rep.Result, "a rotation in progress does not change the result")
	r = e.run(e.cmd("status")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "rotation:     in progress (a new key is staged in pending_private_key until its certificate is imported; secret version 3)")

	certFile, _ := e.sign("kv-2.pem", csr2)
	r = e.run(e.cmd("import", "--cert", certFile)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	_, raw = status()
	assert.JSONEq(t, `{"pending":false,"secret_version":4}`, string(raw["rotation"]))

	// Transit: a key version without a certificate newer than the served one.
	r = csrAndImport([]string{"--transit"}, "--transit")
	assert.Contains(t, r.stdout, "(key version 1)")
	_, raw = status("--transit")
	assert.JSONEq(t, `{"pending":false,"latest_key_version":1,"certified_key_versions":[1]}`, string(raw["rotation"]))

	r = e.run(e.cmd("csr", "--transit", "--rotate")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csr2 = []byte(r.stdout)
	rep, raw = status("--transit")
	assert.JSONEq(t, `{"pending":true,"latest_key_version":2,"certified_key_versions":[1]}`, string(raw["rotation"]))
	assert.Equal(t, 1, rep.Store.KeyVersion, "version 1 keeps serving")
	r = e.run(e.cmd("status", "--transit")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "rotation:     in progress (key version 2 waits for its certificate; versions with a certificate: 1)")

	certFile, _ = e.sign("transit-2.pem", csr2)
	r = e.run(e.cmd("import", "--transit", "--cert", certFile)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "(key version 2)")

	// Renewing the older version 1 prints version 1, not the served 2.
	r = csrAndImport([]string{"--transit", "--existing", "--key-version", "1"}, "--transit")
	assert.Contains(t, r.stdout, "(key version 1)")
	assert.NotContains(t, r.stdout, "(key version 2)")
	rep, raw = status("--transit")
	assert.JSONEq(t, `{"pending":false,"latest_key_version":2,"certified_key_versions":[1,2]}`, string(raw["rotation"]))
	assert.Equal(t, 2, rep.Store.KeyVersion)

	// Nothing stored: no rotation state.
	r = e.run(e.cmd("status", "--json", "--kv-path", "knot/development/rotation-nothing")...)
	assert.Equal(t, cli.ExitRefused, r.code, r)
	assert.NotContains(t, r.stdout, `"rotation"`, "nothing stored: no rotation state")
}
