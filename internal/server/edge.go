package server

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/platform/tenant-registry/internal/text"
)

// normalizeContentType gives every protocol one spelling of each media
// type: the type and subtype in lower case, and for JSON a charset
// parameter of UTF-8 (in any case) dropped. `application/json`,
// `Application/JSON` and `application/json;charset=UTF-8` then reach the
// same codec, on the Connect routes and the REST paths alike. JSON in any
// other charset is refused with 415, as RFC 8259 allows only UTF-8.
func normalizeContentType(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		if ct == "" || ct == "application/json" || ct == "application/proto" {
			next.ServeHTTP(w, r) // the common cases, untouched
			return
		}
		mediaType, params, err := mime.ParseMediaType(ct)
		if err != nil {
			writeError(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument,
				"Content-Type: cannot parse "+quote(ct))
			return
		}
		if isJSON(mediaType) {
			if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
				writeError(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument,
					"Content-Type: JSON must be UTF-8, not charset "+quote(cs))
				return
			}
			delete(params, "charset")
		}
		norm := mediaType
		if len(params) > 0 {
			norm = mime.FormatMediaType(mediaType, params)
		}
		r.Header.Set("Content-Type", norm)
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether a (lower-case) media type is a JSON encoding:
// application/json, Connect's streaming application/connect+json, gRPC's
// application/grpc+json and gRPC-Web's application/grpc-web+json.
func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// quote quotes client input for an error message.
func quote(s string) string { return strconv.Quote(text.Truncate(s, 200)) }

// restRoute is one google.api.http binding: a method, a path template and
// the fields its path variables set.
type restRoute struct {
	method    string
	segments  []string        // literal segments; "" where a variable stands
	vars      []string        // the variables' field paths
	wholeBody bool            // body: "*": the request message is the body
	noBody    bool            // no body: the request comes from the path and query
	fields    map[string]bool // the request's top-level fields, by proto name
	// plain: served by a plain handler on the mux (the probes, the NDJSON
	// export), listed so that another method is 405, not 404.
	plain bool
	// procedure is the RPC's, "/<service>/<method>".
	procedure string
}

// plainRoutes are the paths of the plain HTTP handlers (routes.go), which
// take GET (and so HEAD) only; a "{name}" segment stands for any one.
func plainRoutes(paths ...string) []restRoute {
	out := make([]restRoute, len(paths))
	for i, p := range paths {
		out[i] = plainRoute(http.MethodGet, p)
	}
	return out
}

// plainRoute is one plain handler's method and path.
func plainRoute(method, path string) restRoute {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	for j, seg := range segments {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			segments[j] = ""
		}
	}
	return restRoute{method: method, segments: segments, plain: true}
}

// restRoutes reads the google.api.http bindings of the named services from
// the registered descriptors.
func restRoutes(serviceNames []string) ([]restRoute, error) {
	var routes []restRoute
	for _, name := range serviceNames {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, err
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
			fields := map[string]bool{}
			for j := 0; j < md.Input().Fields().Len(); j++ {
				fields[string(md.Input().Fields().Get(j).Name())] = true
			}
			for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if r, ok := newRESTRoute(b); ok {
					r.fields = fields
					r.procedure = "/" + name + "/" + string(md.Name())
					routes = append(routes, r)
				}
			}
		}
	}
	return routes, nil
}

func newRESTRoute(b *annotations.HttpRule) (restRoute, bool) {
	var method, path string
	switch p := b.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, path = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		method, path = http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		method, path = http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		method, path = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		method, path = http.MethodDelete, p.Delete
	default:
		return restRoute{}, false
	}
	r := restRoute{method: method, wholeBody: b.GetBody() == "*", noBody: b.GetBody() == ""}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			v, _, _ := strings.Cut(strings.Trim(seg, "{}"), "=")
			r.vars = append(r.vars, v)
			seg = ""
		}
		r.segments = append(r.segments, seg)
	}
	return r, true
}

// matches reports whether the path's segments fit the route's template
// (a variable stands for one non-empty segment).
func (r restRoute) matches(segments []string) bool {
	if len(segments) != len(r.segments) {
		return false
	}
	for i, s := range r.segments {
		if s == "" && segments[i] == "" || s != "" && s != segments[i] {
			return false
		}
	}
	return true
}

// restFront routes the REST paths and applies their rules for URLs before
// the transcoder sees a request:
//
//   - a path no route has is 404; a path whose routes take other methods
//     is 405 with Allow (the plain handlers' paths too); HEAD is a GET
//     without its body;
//   - the path and the query must be valid UTF-8 once unescaped (400);
//   - the body is JSON: another Content-Type is 415 (the RPC protocols
//     live on the /tenantregistry.v1.<Service>/ routes);
//   - a query parameter may not name a path variable (400: the path says
//     which object, `DELETE /v1/api-keys/N?id=M` is not a way to reach M);
//   - on a route whose body is the whole request (POST with `body: "*"`),
//     the query string is ignored; on one that takes no body (GET,
//     DELETE), a body is ignored;
//   - elsewhere, query parameters that are no top-level field of the
//     request are ignored, so cache busters such as `?_=1733000000` do no
//     harm.
func restFront(routes []restRoute, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil || !utf8.ValidString(path) {
			writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument, "path: not valid UTF-8")
			return
		}
		segments := strings.Split(strings.Trim(path, "/"), "/")
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet // a GET without its body
		}
		var route *restRoute
		var allow []string
		for i := range routes {
			if !routes[i].matches(segments) {
				continue
			}
			if routes[i].method == method && !routes[i].plain {
				route = &routes[i]
				break
			}
			allow = append(allow, routes[i].method)
		}
		switch {
		case route == nil && len(allow) == 0:
			writeError(w, http.StatusNotFound, connect.CodeNotFound, "no such path: "+quote(r.URL.Path))
			return
		case route == nil:
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, connect.CodeUnimplemented,
				"method "+r.Method+" not allowed; this path takes "+strings.Join(allow, ", "))
			return
		}
		query, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument, "query string: "+err.Error())
			return
		}
		for k, vs := range query {
			if !utf8.ValidString(k) || !validUTF8(vs) {
				writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument, "query string: not valid UTF-8")
				return
			}
		}
		if r.Method != method {
			// The server still knows it is a HEAD and sends no body.
			r = r.WithContext(r.Context())
			r.Method = method
		}
		// Only REST reaches the transcoder: no other protocol's headers.
		r.Header.Del("Connect-Protocol-Version")
		switch {
		case route.noBody:
			if r.Body != nil && r.Body != http.NoBody {
				_ = r.Body.Close()
			}
			r.Body, r.ContentLength = http.NoBody, 0
			for _, h := range []string{"Content-Length", "Content-Encoding", "Content-Type"} {
				r.Header.Del(h)
			}
		case r.Header.Get("Content-Type") != "" && r.Header.Get("Content-Type") != "application/json":
			writeError(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument,
				"request body: the REST paths take JSON (Content-Type: application/json)")
			return
		}
		for k := range query {
			if slices.Contains(route.vars, k) {
				writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument,
					"query parameter "+quote(k)+" names a path variable; the path says which object")
				return
			}
			if route.wholeBody || !route.fields[k] {
				query.Del(k)
			}
		}
		r.URL.RawQuery = query.Encode()
		if d := longRPCs[route.procedure]; d > 0 {
			r = liftDeadlines(w, r, d)
		}
		next.ServeHTTP(w, r)
	})
}

func validUTF8(vs []string) bool {
	for _, v := range vs {
		if !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// writeError writes the documented REST error body with an explicit HTTP
// status (for the few answers whose status is not the Connect code's own).
func writeError(w http.ResponseWriter, status int, code connect.Code, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code.String(), "message": msg})
}
