package vaulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// AuditRequest is one request as Vault's audit device recorded it.
type AuditRequest struct {
	Time      time.Time
	Operation string // "read", "update", "list", ...
	Path      string // without the /v1/ prefix, e.g. "secret/metadata/knot/app"
}

// EnableAudit enables a file audit device that writes to the server's
// standard output, where [Vault.AuditRequests] reads it back. It is the
// server's own record of every request, whichever client sent it. Enabling
// it twice is harmless.
func (v *Vault) EnableAudit(ctx context.Context) error {
	c, err := v.Client()
	if err != nil {
		return err
	}
	audits, err := c.Sys().ListAuditWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vaulttest: list audit devices: %w", err)
	}
	if _, ok := audits["stdout/"]; ok {
		return nil
	}
	err = c.Sys().EnableAuditWithOptionsWithContext(ctx, "stdout", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": "stdout"},
	})
	if err != nil {
		return fmt.Errorf("vaulttest: enable file audit device: %w", err)
	}
	return nil
}

// AuditRequests returns the requests the audit device enabled by
// [Vault.EnableAudit] recorded so far, oldest first. Only the bounded tail
// of the server output is kept (about 1 MiB), enough for a test's requests.
func (v *Vault) AuditRequests(ctx context.Context) ([]AuditRequest, error) {
	out, err := v.b.logs(ctx)
	if err != nil {
		return nil, err
	}
	var reqs []AuditRequest
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, `{"`)
		if i < 0 {
			continue
		}
		var e struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line[i:]), &e) != nil || e.Type != "request" {
			continue
		}
		reqs = append(reqs, AuditRequest{Time: e.Time, Operation: e.Request.Operation, Path: e.Request.Path})
	}
	return reqs, nil
}

// CountAudit counts the requests with the given operation and path made
// at or after since.
func CountAudit(reqs []AuditRequest, operation, path string, since time.Time) int {
	n := 0
	for _, r := range reqs {
		if r.Operation == operation && r.Path == path && !r.Time.Before(since) {
			n++
		}
	}
	return n
}
