package integration_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// knotAPI is a knotclient.Client for the fake Knot presenting p's
// certificate. Retries are off so that every failed call is counted.
func (e *vsEnv) knotAPI(t *testing.T, p *provider.Provider) func(ctx context.Context) error {
	t.Helper()
	c, err := knotclient.New(knotclient.Config{
		ClientID:     e.knot.ClientID(),
		Secret:       knotclient.StaticSecret(e.knot.Secret()),
		Certificates: p,
		BaseURL:      e.knot.URL(),
		RootCAs:      e.knot.RootCAs(),
		MaxAttempts:  1,
		Timeout:      10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return func(ctx context.Context) error {
		_, err := c.GetJWEKey(ctx)
		return err
	}
}

// startLoadFunc runs n goroutines calling call until stopped.
func startLoadFunc(call func(context.Context) error, n int) *vsLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &vsLoad{cancel: cancel}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				if err := call(ctx); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

// TestKVRotationUnderLoad: a new key is staged with ProvisionRotate while 8
// goroutines call Knot, its certificate is imported (a new KV version), and
// the fake sees the new serial within a poll interval, with no failed call.
func TestKVRotationUnderLoad(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const mount, path = "secret", "knot/rotation"
	const poll = 500 * time.Millisecond
	kv, leafA := e.provisionKV(t, mount, path)
	var rotations sync.Map
	p := e.newProvider(t, kv, provider.WithPollInterval(poll), provider.WithJitter(0),
		provider.OnRotated(func(_, b *provider.Bundle) { rotations.Store(b.Version, provider.SerialHex(b.Leaf())) }))
	call := e.knotAPI(t, p)
	require.NoError(t, call(ctx))
	serialA := provider.SerialHex(leafA)

	load := startLoadFunc(call, 8)
	defer load.stop()
	time.Sleep(200 * time.Millisecond) // load is running with certificate A

	rotator, err := vaultsource.NewKV(e.client, mount, path)
	require.NoError(t, err)
	csrB, err := rotator.Provision(ctx, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.NoError(t, err)
	// A staged key does not disturb the serving certificate.
	_, err = rotator.Provision(ctx, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.ErrorIs(t, err, vaultsource.ErrKeyExists, "one staged key at a time")
	again, err := rotator.CSR(ctx, e.knot.ClientID())
	require.NoError(t, err)
	csrParsed, err := provider.ParseCSR(csrB)
	require.NoError(t, err)
	againParsed, err := provider.ParseCSR(again)
	require.NoError(t, err)
	assert.True(t, csrParsed.PublicKey.(*rsa.PublicKey).Equal(againParsed.PublicKey), "CSR re-derived from the staged key")

	certB, err := e.knot.SignCSR(csrB)
	require.NoError(t, err)
	leavesB, err := provider.ParseCertificates(certB)
	require.NoError(t, err)
	serialB := provider.SerialHex(leavesB[0])
	require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), certB, nil)))
	imported := time.Now()

	seenAfter := waitFor(t, 10*time.Second, "the new serial at Knot", func() bool { return serialSeen(e.knot, serialB) })
	time.Sleep(300 * time.Millisecond) // keep the load going on the new certificate
	load.stop()

	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %v)", load.firstErr.Load())
	assert.Equal(t, []string{serialA, serialB}, e.knot.Serials())
	var lastA, firstB time.Time
	for _, r := range e.knot.Requests() {
		switch r.ClientSerial {
		case serialA:
			lastA = r.Time
		case serialB:
			if firstB.IsZero() {
				firstB = r.Time
			}
		}
	}
	sec, err := e.client.KVv2(mount).Get(ctx, path)
	require.NoError(t, err)
	assert.NotContains(t, keys(sec.Data), "pending_private_key", "the staged key was promoted")
	b, err := p.Bundle(ctx)
	require.NoError(t, err)
	assert.Equal(t, serialB, provider.SerialHex(b.Leaf()))
	t.Logf("figures: poll %s; new serial %s seen %s after import (first B request %s after import; last A request %s after import); %d calls ok, %d failed, 8 goroutines; KV versions: A=2, staged=3, B=%s; metadata reads %d, data reads %d",
		poll, serialB, seenAfter.Round(time.Millisecond), firstB.Sub(imported).Round(time.Millisecond), lastA.Sub(imported).Round(time.Millisecond),
		load.ok.Load(), load.failed.Load(), b.Version,
		e.counter.count(http.MethodGet, "secret/metadata/"+path), e.counter.count(http.MethodGet, "secret/data/"+path))
}

// TestKVProvisionRules: CAS-protected creation under a race, staging,
// forced replacement, and imports that are refused without writing.
func TestKVProvisionRules(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	clientID := e.knot.ClientID()

	t.Run("concurrent provisioners", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = vaultsource.ProvisionKV(ctx, e.client, "secret", "knot/race", clientID, vaultsource.ProvisionNew)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, vaultsource.ErrKeyExists)
		}
		assert.Equal(t, 1, won, "exactly one key is stored")
		meta, err := e.client.KVv2("secret").GetMetadata(ctx, "knot/race")
		require.NoError(t, err)
		assert.Equal(t, 1, meta.CurrentVersion, "check-and-set kept it to one write")
	})

	t.Run("import refused writes nothing", func(t *testing.T) {
		const path = "knot/refuse"
		kv, leaf := e.provisionKV(t, "secret", path)
		other, err := e.knot.IssueClient() // right CA and CN, another key
		require.NoError(t, err)
		wrongCN, err := e.knot.IssueClientCN("someone-else")
		require.NoError(t, err)
		csr, err := kv.CSR(ctx, clientID)
		require.NoError(t, err)
		expired, err := e.knot.SignCSRValidity(csr, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
		require.NoError(t, err)
		foreign := e.withKnot(t) // another CA
		foreignCert, err := foreign.knot.SignCSR(csr)
		require.NoError(t, err)

		for name, tc := range map[string]struct {
			cert []byte
			want error
		}{
			"other key":      {provider.EncodeCertificates(other.Chain), provider.ErrKeyMismatch},
			"wrong cn":       {provider.EncodeCertificates(wrongCN.Chain), provider.ErrSubjectCN},
			"expired":        {expired, provider.ErrExpired},
			"untrusted ca":   {foreignCert, provider.ErrUntrustedChain},
			"garbage":        {[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), provider.ErrMalformedCert},
			"private key!":   {garbageKeyPEM, provider.ErrUnexpectedPEMType},
			"not pem at all": {[]byte("hello"), provider.ErrNotPEM},
		} {
			t.Run(name, func(t *testing.T) {
				before, err := e.client.KVv2("secret").GetMetadata(ctx, path)
				require.NoError(t, err)
				_, importErr := kv.ImportCertificate(ctx, e.requirements(), tc.cert, nil)
				require.ErrorIs(t, importErr, tc.want)
				after, err := e.client.KVv2("secret").GetMetadata(ctx, path)
				require.NoError(t, err)
				assert.Equal(t, before.CurrentVersion, after.CurrentVersion, "nothing was written")
				t.Logf("%s: %v", name, importErr)
			})
		}
		b, err := kv.Fetch(ctx)
		require.NoError(t, err)
		assert.True(t, b.Leaf().Equal(leaf))
	})

	t.Run("force replaces key and certificate", func(t *testing.T) {
		const path = "knot/force"
		kv, _ := e.provisionKV(t, "secret", path)
		csr, err := vaultsource.ProvisionKV(ctx, e.client, "secret", path, clientID, vaultsource.ProvisionForce)
		require.NoError(t, err)
		_, err = kv.Fetch(ctx)
		require.ErrorIs(t, err, vaultsource.ErrMissingField, "the old certificate went with the old key")
		cert, err := e.knot.SignCSR(csr)
		require.NoError(t, err)
		require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), cert, nil)))
		b, err := kv.Fetch(ctx)
		require.NoError(t, err)
		assert.Equal(t, "4", b.Version)
	})

	t.Run("transit refusals", func(t *testing.T) {
		require.NoError(t, e.vault.EnableTransit(ctx))
		_, err := e.client.Logical().WriteWithContext(ctx, "transit/keys/exportable", map[string]any{"type": "rsa-2048", "exportable": true})
		require.NoError(t, err)
		_, err = vaultsource.ProvisionTransit(ctx, e.client, "transit", "exportable", clientID, vaultsource.ProvisionForce)
		require.ErrorIs(t, err, vaultsource.ErrKeyExportable)
		_, err = e.client.Logical().WriteWithContext(ctx, "transit/keys/big", map[string]any{"type": "rsa-4096"})
		require.NoError(t, err)
		_, err = vaultsource.ProvisionTransit(ctx, e.client, "transit", "big", clientID, vaultsource.ProvisionRotate)
		require.ErrorIs(t, err, vaultsource.ErrUnsupportedKeyType)

		tr, leaf := e.provisionTransit(t, "refuse")
		other, err := e.knot.IssueClient()
		require.NoError(t, err)
		_, err = tr.ImportCertificate(ctx, e.requirements(), provider.EncodeCertificates(other.Chain), nil)
		require.ErrorIs(t, err, provider.ErrKeyMismatch)
		var ve *vaultsource.Error
		require.True(t, errors.As(err, &ve))
		assert.Equal(t, "transit/keys/refuse", ve.Path)
		b, err := tr.Fetch(ctx)
		require.NoError(t, err)
		assert.True(t, b.Leaf().Equal(leaf), "the stored chain is unchanged")

		// Force on an existing key adds a version; the CSR is for it.
		csr, err := vaultsource.ProvisionTransit(ctx, e.client, "transit", "refuse", clientID, vaultsource.ProvisionForce)
		require.NoError(t, err)
		v, err := tr.Version(ctx)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(v, "transit:refuse:v1:"), "still presenting v1 until v2 has a certificate: %s", v)
		cert, err := e.knot.SignCSR(csr)
		require.NoError(t, err)
		pinned, err := vaultsource.NewTransit(e.client, "transit", "refuse", vaultsource.WithKeyVersion(1))
		require.NoError(t, err)
		_, err = pinned.ImportCertificate(ctx, e.requirements(), cert, nil)
		require.ErrorIs(t, err, provider.ErrKeyMismatch, "a pinned import only accepts its version's key")
		require.NoError(t, importErr(tr.ImportCertificate(ctx, e.requirements(), cert, nil)))
		v, err = tr.Version(ctx)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(v, "transit:refuse:v2:"), v)
	})
}
