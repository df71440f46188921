package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/storetest"
)

// connectGET sends a Connect GET of procedure with the JSON message in the
// query string, as a Connect client with HTTP GET enabled does.
func connectGET(t *testing.T, srv *httptest.Server, procedure, message string) (int, http.Header, string) {
	t.Helper()
	q := url.Values{"encoding": {"json"}, "message": {message}}
	res := do(t, srv, http.MethodGet, procedure+"?"+q.Encode(), "", nil)
	return res.status, res.header, res.body
}

// TestConnectGET: a Connect GET reaches only the pure reads. VerifyApiKey's
// request carries the secret key, so a GET of it (which would put the key in
// the URL, and so in access and proxy logs) is refused before the handler
// runs, as connect-go refuses a GET of any RPC not marked NO_SIDE_EFFECTS:
// 405 with Allow: POST and no body.
func TestConnectGET(t *testing.T) {
	s := newStack(t, storetest.SQLite(t))
	k := &keyStack{srv: s.srv, keys: s.keys}
	_, plain := k.create(t, "get-test")

	tests := []struct {
		name      string
		procedure string
		message   string
		status    int
		allow     string // the Allow header, when status is 405
		body      string // a substring of the body ("" for none expected)
		notBody   string // must not be in the body
	}{
		{
			name:      "VerifyApiKey is refused",
			procedure: tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure,
			message:   `{"key":"` + plain + `"}`,
			status:    http.StatusMethodNotAllowed,
			allow:     http.MethodPost,
			notBody:   "valid",
		},
		{
			name:      "GetTenantBySlug answers",
			procedure: tenantregistryv1connect.TenantServiceGetTenantBySlugProcedure,
			message:   `{"slug":"acme"}`,
			status:    http.StatusOK,
			body:      `"slug":"acme"`,
		},
		{
			name:      "ListApiKeys answers, without secrets",
			procedure: tenantregistryv1connect.ApiKeyServiceListApiKeysProcedure,
			message:   `{"tenant_id":"` + acmeID + `"}`,
			status:    http.StatusOK,
			body:      `"name":"get-test"`,
			notBody:   plain,
		},
		{
			name:      "CreateApiKey is refused",
			procedure: tenantregistryv1connect.ApiKeyServiceCreateApiKeyProcedure,
			message:   `{"tenant_id":"` + acmeID + `","name":"by-get"}`,
			status:    http.StatusMethodNotAllowed,
			allow:     http.MethodPost,
			notBody:   "trk_",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := connectGET(t, s.srv, tt.procedure, tt.message)
			if status != tt.status {
				t.Errorf("GET %s: status %d, want %d (body %s)", tt.procedure, status, tt.status, body)
			}
			if tt.status == http.StatusMethodNotAllowed {
				if got := header.Get("Allow"); got != tt.allow {
					t.Errorf("GET %s: Allow %q, want %q", tt.procedure, got, tt.allow)
				}
				if body != "" {
					t.Errorf("GET %s: body %q, want none", tt.procedure, body)
				}
			}
			if tt.body != "" && !strings.Contains(body, tt.body) {
				t.Errorf("GET %s: body %s, want it to contain %s", tt.procedure, body, tt.body)
			}
			if tt.notBody != "" && strings.Contains(body, tt.notBody) {
				t.Errorf("GET %s: body %s contains %s", tt.procedure, body, tt.notBody)
			}
		})
	}

	// The refused GET of CreateApiKey created no key.
	var list struct {
		APIKeys []apiKeyJSON `json:"api_keys"`
	}
	if status := call(t, s.srv, http.MethodGet, "/v1/api-keys?tenant_id="+acmeID, "", &list); status != http.StatusOK {
		t.Fatalf("list keys: %d", status)
	}
	for _, key := range list.APIKeys {
		if key.Name == "by-get" {
			t.Errorf("a refused GET of CreateApiKey created key %s", key.ID)
		}
	}
}

// TestConnectGETEveryRPC: every unary RPC marked NO_SIDE_EFFECTS answers a
// Connect GET with something other than 405, and every other one answers
// 405; and no RPC so marked takes a secret in its request (a GET puts the
// request in the URL).
func TestConnectGETEveryRPC(t *testing.T) {
	s := newStack(t, storetest.SQLite(t))
	methods := registryMethods(t)
	if len(methods) < 20 {
		t.Fatalf("found only %d RPCs of tenantregistry.v1", len(methods))
	}
	for _, m := range methods {
		if m.IsStreamingServer() || m.IsStreamingClient() {
			continue // Connect GET is for unary RPCs only
		}
		procedure := "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
		get := m.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
		t.Run(string(m.Name()), func(t *testing.T) {
			if get {
				if f := secretField(m.Input(), 0); f != "" {
					t.Errorf("%s is NO_SIDE_EFFECTS (callable with GET) but its request carries %s", procedure, f)
				}
			}
			status, _, body := connectGET(t, s.srv, procedure, `{}`)
			if got, want := status == http.StatusMethodNotAllowed, !get; got != want {
				t.Errorf("GET %s: status %d (NO_SIDE_EFFECTS %v): want 405 exactly when not NO_SIDE_EFFECTS (body %s)", procedure, status, get, body)
			}
		})
	}
}

// registryMethods are the RPCs of every tenantregistry.v1 service.
func registryMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("tenantregistry.v1", func(f protoreflect.FileDescriptor) bool {
		for i := 0; i < f.Services().Len(); i++ {
			ms := f.Services().Get(i).Methods()
			for j := 0; j < ms.Len(); j++ {
				out = append(out, ms.Get(j))
			}
		}
		return true
	})
	return out
}

// secretField names a field of msg (or of a message in it) that holds a
// secret: an API key, a password, a token, a secret; "" when there is none.
func secretField(msg protoreflect.MessageDescriptor, depth int) string {
	if depth > 5 {
		return ""
	}
	fields := msg.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		name := string(f.Name())
		if name == "key" || strings.HasSuffix(name, "api_key") ||
			strings.Contains(name, "secret") || strings.Contains(name, "password") || strings.Contains(name, "token") {
			return string(f.FullName())
		}
		if f.Message() != nil {
			if s := secretField(f.Message(), depth+1); s != "" {
				return s
			}
		}
	}
	return ""
}
