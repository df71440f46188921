package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
)

// restErrors rewrites the REST transcoder's error responses into the
// documented shape: {"code":"not_found","message":"…"} with the HTTP status
// the README's API section gives the code. Successful responses pass
// through untouched.
func restErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ew := &errorWriter{ResponseWriter: w}
		next.ServeHTTP(ew, r)
		ew.finish()
	})
}

type errorWriter struct {
	http.ResponseWriter
	status int // the error status held back, 0 while not failed
	body   bytes.Buffer
}

func (w *errorWriter) WriteHeader(status int) {
	if status >= 400 && w.status == 0 {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *errorWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		if w.body.Len() > 64<<10 {
			return len(b), nil // an error body needs no more than this
		}
		return w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Flush does nothing: every RPC behind the transcoder is unary (the one
// stream, ExportEvents, has its own NDJSON handler), so its answer goes out
// whole when the handler returns — one write with a Content-Length, instead
// of the transcoder's flush forcing a chunked answer and a second write.
func (w *errorWriter) Flush() {}

func (w *errorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *errorWriter) finish() {
	if w.status == 0 {
		return
	}
	// The transcoder writes google.rpc.Status JSON: {"code": 5, "message": …}.
	var st struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	code := codeFromHTTP(w.status)
	msg := http.StatusText(w.status)
	switch w.status {
	case http.StatusUnsupportedMediaType:
		msg = "request body: the REST paths take JSON (Content-Type: application/json)"
	case http.StatusMethodNotAllowed:
		// The transcoder set Allow; the status stays 405.
		writeError(w.ResponseWriter, w.status, code, "method not allowed; this path takes "+w.Header().Get("Allow"))
		return
	}
	if err := json.Unmarshal(w.body.Bytes(), &st); err == nil && len(st.Code) > 0 {
		if n, err := strconv.Atoi(string(st.Code)); err == nil && n > 0 && n <= 16 {
			code = connect.Code(n)
		}
		if st.Message != "" {
			msg = st.Message
		}
	}
	if code == connect.CodeUnknown {
		// The handlers' errors all have a code (errorInterceptor); an
		// unknown one is the transcoder failing on what the client sent,
		// such as a body that is not the gzip its Content-Encoding says.
		code, msg = connect.CodeInvalidArgument, "request body: "+msg
	}
	writeJSONError(w.ResponseWriter, code, msg)
}

func writeJSONError(w http.ResponseWriter, code connect.Code, msg string) {
	writeError(w, httpStatus(code), code, msg)
}
