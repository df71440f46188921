package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request to srv: a JSON Content-Type when there is a body,
// then header (which may override it, or remove it with ""), and reads the
// whole answer. It is the one request helper of this package's tests.
func do(t testing.TB, srv *httptest.Server, method, path, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

// call sends a JSON request and decodes the JSON answer into out.
func call(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	res := do(t, srv, method, path, body, nil)
	if got := res.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("%s %s: Content-Type %q, want JSON (body %s)", method, path, got, res.body)
	}
	if err := json.Unmarshal([]byte(res.body), out); err != nil {
		t.Fatalf("%s %s: %d, body %s: %v", method, path, res.status, res.body, err)
	}
	return res.status
}

// send sends body with an explicit Content-Type ("" for none).
func send(t *testing.T, srv *httptest.Server, method, path, contentType, body string) (int, http.Header, string) {
	t.Helper()
	res := do(t, srv, method, path, body, map[string]string{"Content-Type": contentType})
	return res.status, res.header, res.body
}
