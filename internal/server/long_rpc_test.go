package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
)

// TestLongRPCsOutliveWriteTimeout: VerifyAuditChain and CreateDigest walk a
// tenant's whole chain and have minutes (longRPCs), which the server's
// WriteTimeout must not cut short. On a server whose WriteTimeout has
// passed before any handler writes, both answer on their RPC and REST
// paths; GetTenant, an ordinary RPC, is cut: the control that shows the
// timeout bites.
func TestLongRPCsOutliveWriteTimeout(t *testing.T) {
	s := newAuthStack(t)
	// The same service on a second server, whose WriteTimeout is up
	// before a handler can write.
	srv := httptest.NewUnstartedServer(s.srv.Config.Handler)
	srv.Config.WriteTimeout = time.Nanosecond
	srv.Start()
	defer srv.Close()
	tenantBody := `{"tenant_id":"` + acmeID + `"}`
	cases := []struct {
		name, path string
		long       bool
	}{
		{"VerifyAuditChain", c.AuditServiceVerifyAuditChainProcedure, true},
		{"VerifyAuditChain REST", "/v1/audit/verify", true},
		{"CreateDigest", c.AuditServiceCreateDigestProcedure, true},
		{"CreateDigest REST", "/v1/audit/digests", true},
		{"GetTenant (control)", c.TenantServiceGetTenantProcedure, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tenantBody
			if !tc.long {
				body = `{"id":"` + acmeID + `"}`
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+s.token("platform_admin"))
			res, err := srv.Client().Do(req)
			var status int
			var got string
			if err == nil {
				b, rerr := io.ReadAll(res.Body)
				res.Body.Close()
				status, got, err = res.StatusCode, string(b), rerr
			}
			switch {
			case tc.long && (err != nil || status != http.StatusOK):
				t.Errorf("%s: %d %q %v, want 200 past the WriteTimeout", tc.path, status, got, err)
			case !tc.long && err == nil && status == http.StatusOK:
				t.Errorf("%s answered 200 past the WriteTimeout; the control should have been cut", tc.path)
			}
		})
	}
}
