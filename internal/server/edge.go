package server

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
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

// quote quotes client input for an error message: valid UTF-8, at most 100
// characters.
func quote(s string) string {
	if r := []rune(strings.ToValidUTF8(s, "\uFFFD")); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return strconv.Quote(s)
}

// restRoute is one google.api.http binding: a method, a path template and
// the fields its path variables set.
type restRoute struct {
	method    string
	segments  []string // literal segments; "" where a variable stands
	vars      []string // the variables' field paths
	wholeBody bool     // body: "*": the request message is the body
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
			rule, _ := proto.GetExtension(sd.Methods().Get(i).Options(), annotations.E_Http).(*annotations.HttpRule)
			for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if r, ok := newRESTRoute(b); ok {
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
	r := restRoute{method: method, wholeBody: b.GetBody() == "*"}
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

// restFront applies the REST paths' rules for URLs before the transcoder
// sees a request:
//
//   - the path and the query must be valid UTF-8 once unescaped (400);
//   - a query parameter may not name a path variable (400: the path says
//     which object, `DELETE /v1/api-keys/N?id=M` is not a way to reach M);
//   - on a route whose body is the whole request (POST with `body: "*"`),
//     the query string is ignored;
//   - elsewhere, query parameters that are no field of the request are
//     ignored (the transcoder discards them), so cache busters such as
//     `?_=1733000000` do no harm.
func restFront(routes []restRoute, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil || !utf8.ValidString(path) {
			writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument, "path: not valid UTF-8")
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
		segments := strings.Split(strings.Trim(path, "/"), "/")
		for _, route := range routes {
			if route.method != r.Method || !route.matches(segments) {
				continue
			}
			if route.wholeBody {
				r.URL.RawQuery = ""
				break
			}
			for k := range query {
				for _, v := range route.vars {
					if k == v || strings.HasPrefix(k, v+".") {
						writeError(w, http.StatusBadRequest, connect.CodeInvalidArgument,
							"query parameter "+quote(k)+" names a path variable; the path says which object")
						return
					}
				}
			}
			break
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
