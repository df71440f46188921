package server_test

import (
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/storetest"
)

// surfacePaths are the routes the surface fuzzer starts from: every REST
// path (with its variables filled in), every Connect procedure, the plain
// HTTP handlers, and a few that do not exist.
var surfacePaths = []string{
	"/healthz", "/readyz", "/v1/audit/export",
	"/v1/tenants", "/v1/tenants/" + acmeID, "/v1/tenants/by-slug/acme", "/v1/tenants/" + acmeID + "/activate",
	"/v1/tenants/" + acmeID + "/cancel", "/v1/tenants/" + acmeID + "/retry-provisioning",
	"/v1/tenants/" + acmeID + "/idp", "/v1/tenants/" + acmeID + "/invitations",
	"/v1/entitlements", "/v1/entitlements/grant", "/v1/entitlements/revoke",
	"/v1/catalog", "/v1/catalog/request", "/v1/catalog/trial-request",
	"/v1/api-keys", "/v1/api-keys/" + acmeID, "/v1/api-keys/" + acmeID + "/rotate",
	"/v1/internal/api-keys/verify", "/v1/internal/keycloak/claims",
	"/v1/audit", "/v1/audit/verify",
	"/tenantregistry.v1.TenantService/CreateTenant", "/tenantregistry.v1.TenantService/GetTenant",
	"/tenantregistry.v1.TenantService/GetTenantBySlug", "/tenantregistry.v1.TenantService/ListTenants",
	"/tenantregistry.v1.TenantService/ActivateTenant", "/tenantregistry.v1.TenantService/CancelTenant",
	"/tenantregistry.v1.TenantService/RetryProvisioning", "/tenantregistry.v1.TenantService/InviteUser",
	"/tenantregistry.v1.SsoService/SetIdpConfig", "/tenantregistry.v1.SsoService/GetIdpConfig",
	"/tenantregistry.v1.SsoService/DeleteIdpConfig",
	"/tenantregistry.v1.EntitlementService/ListEntitlements", "/tenantregistry.v1.EntitlementService/GrantEntitlement",
	"/tenantregistry.v1.EntitlementService/RevokeEntitlement",
	"/tenantregistry.v1.CatalogService/ListProducts", "/tenantregistry.v1.CatalogService/RequestProduct",
	"/tenantregistry.v1.CatalogService/StartTrial",
	"/tenantregistry.v1.ApiKeyService/CreateApiKey", "/tenantregistry.v1.ApiKeyService/ListApiKeys",
	"/tenantregistry.v1.ApiKeyService/RevokeApiKey", "/tenantregistry.v1.ApiKeyService/RotateApiKey",
	"/tenantregistry.v1.InternalService/VerifyApiKey", "/tenantregistry.v1.InternalService/ResolveClaims",
	"/tenantregistry.v1.AuditService/AppendEvent", "/tenantregistry.v1.AuditService/ListEvents",
	"/tenantregistry.v1.AuditService/ExportEvents", "/tenantregistry.v1.AuditService/VerifyAuditChain",
	"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/", "/v1", "/v1/nothing", "/tenantregistry.v1.Nope/Nope",
	// The tenant's life and its projects (appended: the seeds' indices stay).
	"/v1/tenants/" + acmeID + "/restore", "/v1/tenants/" + acmeID + "/export", "/v1/tenants/by-slug/export",
	"/v1/tenants/" + acmeID + "/projects", "/v1/tenants/" + acmeID + "/projects/" + acmeID,
	"/tenantregistry.v1.TenantService/UpdateTenant", "/tenantregistry.v1.TenantService/DeleteTenant",
	"/tenantregistry.v1.TenantService/RestoreTenant", "/tenantregistry.v1.TenantService/ExportTenant",
	"/tenantregistry.v1.ProjectService/CreateProject", "/tenantregistry.v1.ProjectService/ListProjects",
	"/tenantregistry.v1.ProjectService/GetProject", "/tenantregistry.v1.ProjectService/UpdateProject",
	"/tenantregistry.v1.ProjectService/DeleteProject",
	// Audit evidence (appended: the seeds' indices stay).
	"/v1/audit/digests", "/v1/audit/public-keys",
	"/tenantregistry.v1.AuditService/CreateDigest", "/tenantregistry.v1.AuditService/ListDigests",
	"/tenantregistry.v1.AuditService/ListPublicKeys",
	"/v1/webhooks", "/v1/webhooks/" + acmeID, "/v1/webhooks/" + acmeID + "/rotate-secret",
	"/v1/webhooks/" + acmeID + "/deliveries", "/v1/webhooks/" + acmeID + "/deliveries/" + acmeID + "/retry",
	"/tenantregistry.v1.WebhookService/CreateEndpoint", "/tenantregistry.v1.WebhookService/ListEndpoints",
	"/tenantregistry.v1.WebhookService/GetEndpoint", "/tenantregistry.v1.WebhookService/DeleteEndpoint",
	"/tenantregistry.v1.WebhookService/RotateEndpointSecret", "/tenantregistry.v1.WebhookService/ListDeliveries",
	"/tenantregistry.v1.WebhookService/RetryDelivery",
	// The Retraced publisher API (appended: the seeds' indices stay).
	"/publisher/v1/project/" + acmeID + "/event", "/publisher/v1/project/" + acmeID + "/viewertoken",
	"/publisher/v1/project/x/event", "/publisher/v1/project/" + acmeID + "/event/bulk",
}

var surfaceMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodHead}

var surfaceContentTypes = []string{
	"", "application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
	"application/json; charset=latin1", "application/proto", "application/connect+json", "application/connect+proto",
	"application/grpc", "application/grpc+json", "application/grpc-web+proto", "application/grpc-web-text",
	"text/plain", "multipart/form-data; boundary=x", "application/json; =", "\x00",
}

// FuzzSurface drives the whole HTTP surface in process — any route, method,
// path suffix, query string, content type, protocol header and body — on
// the embedded store in dev mode (a token-less caller is a platform admin,
// so every RPC is reachable), and fails on any 5xx: every request gets its answer
// or a clear 4xx. Seeds: testdata/fuzz/FuzzSurface and the corpus below.
func FuzzSurface(f *testing.F) {
	st := newStack(f, storetest.SQLite(f))
	srv := st.srv
	// A publishing key, so the seeds below reach the publisher API's
	// decoding, the append and the viewer tokens.
	key := storetest.Must(st.keys.Create(storetest.SystemContext(), apikey.CreateInput{TenantID: acmeID, Name: "fuzz", Scopes: []string{"audit:publish"}}))
	seeds := []struct {
		route, method, ctype uint8
		suffix, query        string
		header               uint8
		body                 string
	}{
		{3, 1, 1, "", "", 0, `{"slug":"fuzz-1","name":"F"}`},
		{4, 0, 0, "", "_=1", 0, ""},
		{5, 0, 0, "%ff", "", 0, ""},
		{15, 0, 0, "", "tenant_id=%ff&page_size=abc", 0, ""},
		{16, 4, 0, "", "id=" + acmeID, 0, ""},
		{18, 1, 2, "", "", 0, `{"key":"trk_x"}`},
		{20, 1, 1, "", "", 0, `{"tenant_id":"` + strings.ToUpper(acmeID) + `","action":"a.b","crud":"c","actor":{"id":"u","type":"system"},"idempotency_key":"k"}`},
		{39, 0, 0, "", `encoding=json&message={"key":"trk_x"}`, 1, ""},
		{24, 1, 5, "", "", 2, "\x00\x00\x00\x00\x02{}"},
		{3, 0, 0, "", "query=a%00b&status=nope&cursor=zzz", 0, ""},
		{11, 2, 1, "/x", "", 0, `{}`},
		{19, 1, 1, "", "", 3, `{"slug":"` + strings.Repeat("株", 300) + `"}`},
	}
	for _, s := range seeds {
		f.Add(s.route, s.method, s.ctype, s.suffix, s.query, s.header, "", "", []byte(s.body))
	}
	f.Add(uint8(40), uint8(1), uint8(6), "", "", uint8(0), "Connect-Timeout-Ms", "100", []byte(`{"tenant_id":"x"}`)) // a streaming error
	f.Add(uint8(3), uint8(0), uint8(0), "", "", uint8(0), "Authorization", "Bearer x.y.z", []byte(nil))
	// The publisher API with a key of the dev seed's shape and a viewer
	// token's prefix on the audit RPCs.
	publisher := len(surfacePaths) - 4
	f.Add(uint8(publisher), uint8(1), uint8(1), "", "", uint8(0), "Authorization", "Token token="+key.Plaintext,
		[]byte(`{"action":"a.b","crud":"c","actor":{"id":"u"},"group":{"id":"`+acmeID+`"},"fields":{"k":"a:b%c=d;e"}}`))
	f.Add(uint8(publisher), uint8(1), uint8(1), "", "", uint8(0), "Authorization", "token=", []byte(`{"target":{"fields":null}}`))
	f.Add(uint8(publisher+1), uint8(0), uint8(0), "", "group_id=x&actor_id=%00&is_admin=true", uint8(0), "Authorization", "Token token="+key.Plaintext, []byte(nil))
	f.Add(uint8(publisher+1), uint8(0), uint8(0), "", "group_id="+acmeID+"&actor_id=v&view_log_action=a.b", uint8(0), "Authorization", "token="+key.Plaintext, []byte(nil))
	list := slices.Index(surfacePaths, "/tenantregistry.v1.AuditService/ListEvents")
	f.Add(uint8(list), uint8(1), uint8(1), "", "", uint8(0), "Authorization", "Bearer rtv1.e30.AAAA", []byte(`{}`))
	f.Fuzz(func(t *testing.T, route, method, ctype uint8, suffix, query string, header uint8, name, value string, body []byte) {
		target := surfacePaths[int(route)%len(surfacePaths)] + suffix
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(surfaceMethods[int(method)%len(surfaceMethods)], srv.URL+target, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client can send
		}
		if ct := surfaceContentTypes[int(ctype)%len(surfaceContentTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		switch header % 4 {
		case 1:
			req.Header.Set("Connect-Protocol-Version", "1")
		case 2:
			req.Header.Set("Connect-Timeout-Ms", "not-a-number")
		case 3:
			req.Header.Set("Content-Encoding", "gzip")
		}
		if name != "" {
			req.Header.Set(name, value)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "net/http: invalid header") {
				return // a request the client refuses to send
			}
			t.Fatalf("%s %s: no answer (the server hung up): %v", req.Method, target, err)
		}
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s (Content-Type %q): %d %s", req.Method, target, req.Header.Get("Content-Type"), res.StatusCode, b)
		}
		if code, ok := serverFault(res, b.String()); ok {
			t.Fatalf("%s %s (Content-Type %q): %d with a server error %s in the stream: %s", req.Method, target, req.Header.Get("Content-Type"), res.StatusCode, code, b)
		}
	})
}

// serverFault finds the server's errors that streaming protocols carry in a
// 200: gRPC's and gRPC-Web's grpc-status (headers, trailers or the
// trailer frame) and Connect's end-of-stream error, for the codes that mean
// the server failed (unknown, internal, data_loss).
//
// gRPC's own rule is the one exception: a message the client framed wrong
// (an incomplete envelope) is a protocol error answered internal, with a
// grpc-message that says so; connect-go follows it, and so do we.
func serverFault(res *http.Response, body string) (string, bool) {
	for _, h := range []http.Header{res.Header, res.Trailer} {
		v := h.Get("Grpc-Status")
		if (v == "2" || v == "13" || v == "15") && !strings.HasPrefix(h.Get("Grpc-Message"), "protocol error") {
			return "grpc-status " + v + " " + h.Get("Grpc-Message"), true
		}
	}
	if m := grpcStatusFrame.FindStringSubmatch(body); m != nil && (m[1] == "2" || m[1] == "13" || m[1] == "15") && !strings.Contains(body, "protocol error") {
		return "grpc-status " + m[1], true
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/connect+") {
		for _, code := range []string{"unknown", "internal", "data_loss"} {
			if strings.Contains(body, `"code":"`+code+`"`) {
				return code, true
			}
		}
	}
	return "", false
}

var grpcStatusFrame = regexp.MustCompile(`(?i)grpc-status:\s*(\d+)`)
