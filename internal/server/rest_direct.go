package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
)

// restDirect serves the two REST calls made on every portal page and on
// every token Keycloak issues, GetTenantBySlug (GET
// /v1/tenants/by-slug/{slug}) and ResolveClaims (POST
// /v1/internal/keycloak/claims), as unary Connect calls of their own
// handlers, interceptors and all, without the transcoder's machinery (its
// message stages cost about a sixth of the server's time per call: make
// bench). Everything else, and any request of theirs out of the ordinary
// (escapes in the path, a body that does not decode, a Content-Encoding),
// goes to next, the transcoder, which stays the reference: the client
// sees the same answer either way, which TestRESTDirectAnswers checks
// against the RPCs' own answers.
//
// It runs behind restFront, whose URL rules have applied: the method is
// the route's, unknown query parameters are gone and a GET has no body.
type restDirect struct {
	tenants, internal http.Handler // the services' Connect handlers
	next              http.Handler
}

const (
	bySlugPrefix = "/v1/tenants/by-slug/"
	claimsPath   = "/v1/internal/keycloak/claims"
)

func (d *restDirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, bySlugPrefix):
		slug := r.URL.Path[len(bySlugPrefix):]
		if slug == "" || strings.Contains(slug, "/") || r.URL.RawPath != "" || r.URL.RawQuery != "" {
			break
		}
		d.bySlug(w, r, slug)
		return
	case r.Method == http.MethodPost && r.URL.Path == claimsPath && r.Header.Get("Content-Encoding") == "":
		d.claims(w, r)
		return
	}
	d.next.ServeHTTP(w, r)
}

// bySlug calls GetTenantBySlug in protobuf and answers its tenant as JSON
// (the route's response_body), as the transcoder does.
func (d *restDirect) bySlug(w http.ResponseWriter, r *http.Request, slug string) {
	body, err := proto.Marshal(&v1.GetTenantBySlugRequest{Slug: slug})
	if err != nil {
		d.next.ServeHTTP(w, r)
		return
	}
	rec := d.call(d.tenants, r, tenantregistryv1connect.TenantServiceGetTenantBySlugProcedure, "application/proto", body)
	defer rec.release()
	if rec.status != http.StatusOK {
		rec.writeError(w)
		return
	}
	var res v1.GetTenantBySlugResponse
	if err := proto.Unmarshal(rec.body.Bytes(), &res); err != nil {
		writeJSONError(w, connect.CodeInternal, "internal error")
		return
	}
	out, err := jsonMarshal.Marshal(res.GetTenant())
	if err != nil {
		writeJSONError(w, connect.CodeInternal, "internal error")
		return
	}
	writeJSONBody(w, out)
}

// claims hands the JSON body to ResolveClaims as a Connect JSON call (the
// route's body is the whole request and its answer the whole response, in
// the same JSON) once it decodes as the request; one that does not goes to
// the transcoder, whose error the client then gets.
func (d *restDirect) claims(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil || len(data) == 0 || jsonUnmarshal.Unmarshal(data, &v1.ResolveClaimsRequest{}) != nil {
		// The transcoder reads the same bytes (and the same read error).
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{err}))
		d.next.ServeHTTP(w, r)
		return
	}
	rec := d.call(d.internal, r, tenantregistryv1connect.InternalServiceResolveClaimsProcedure, "application/json", data)
	defer rec.release()
	if rec.status != http.StatusOK {
		rec.writeError(w)
		return
	}
	writeJSONBody(w, rec.body.Bytes())
}

// errReader returns err (io.EOF when nil) on every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

// call sends a unary Connect POST of procedure with body, on r's context
// and headers (its bearer token and request id), to h and records the
// answer.
func (d *restDirect) call(h http.Handler, r *http.Request, procedure, contentType string, body []byte) *recorder {
	req := r.Clone(r.Context())
	req.Method = http.MethodPost
	u := *r.URL
	u.Path, u.RawPath, u.RawQuery = procedure, "", ""
	req.URL = &u
	req.RequestURI = procedure
	for _, k := range []string{"Content-Length", "Content-Encoding", "Connect-Timeout-Ms", "Connect-Content-Encoding", "Connect-Accept-Encoding"} {
		req.Header.Del(k)
	}
	req.Header.Set("Content-Type", contentType)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	rec := recorders.Get().(*recorder)
	h.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

// recorder is an http.ResponseWriter that keeps a handler's answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

var recorders = sync.Pool{New: func() any { return &recorder{header: http.Header{}} }}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}

func (rec *recorder) release() {
	clear(rec.header)
	rec.status = 0
	if rec.body.Cap() > 64<<10 {
		return // not worth keeping
	}
	rec.body.Reset()
	recorders.Put(rec)
}

// writeError writes a Connect unary error answer ({"code":"not_found",
// "message":…}) in the REST shape and status, as restErrors does for the
// transcoder's.
func (rec *recorder) writeError(w http.ResponseWriter) {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	code := codeFromHTTP(rec.status)
	msg := http.StatusText(rec.status)
	if json.Unmarshal(rec.body.Bytes(), &e) == nil {
		var c connect.Code
		if c.UnmarshalText([]byte(e.Code)) == nil {
			code = c
		}
		if e.Message != "" {
			msg = e.Message
		}
	}
	writeJSONError(w, code, msg)
}

// writeJSONBody writes a 200 answer of JSON body.
func writeJSONBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
