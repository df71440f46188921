package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxBodyBytes bounds a request body: Connect, gRPC and gRPC-Web messages
// (connect.WithReadMaxBytes) and REST bodies (limitBody) alike.
const maxBodyBytes = 1 << 20

// streamIdleTimeout is how long a streaming response may go without a write
// succeeding before the connection is cut. It stands in for the server's
// WriteTimeout on the routes that stream (see streamDeadlines).
const streamIdleTimeout = 60 * time.Second

// limitBody refuses a body over limit bytes with 413 and
// {"code":"resource_exhausted","message":…}: at once when Content-Length
// says so, else when reading passes the limit (whatever error the handler
// then answers is replaced).
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
		r.Body = body
		next.ServeHTTP(&tooLargeWriter{ResponseWriter: w, body: body, limit: limit}, r)
	})
}

type limitedBody struct {
	io.ReadCloser
	tripped bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && errors.As(err, &mbe) {
		b.tripped = true
	}
	return n, err
}

// tooLargeWriter turns the error answer of a request whose body passed the
// limit into the 413.
type tooLargeWriter struct {
	http.ResponseWriter
	body     *limitedBody
	limit    int64
	replaced bool
}

func (w *tooLargeWriter) WriteHeader(status int) {
	if w.replaced {
		return
	}
	if status >= 400 && w.body.tripped {
		w.replaced = true
		writeTooLarge(w.ResponseWriter, w.limit)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *tooLargeWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *tooLargeWriter) Flush() {
	if w.replaced {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *tooLargeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeTooLarge(w http.ResponseWriter, limit int64) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"code":    "resource_exhausted",
		"message": "request body too large: the limit is " + strconv.FormatInt(limit, 10) + " bytes",
	})
}

// streamDeadlines lets a streaming response outlive the server's
// ReadTimeout and WriteTimeout: the request's read deadline is lifted (the
// streaming routes take no request stream, and on HTTP/1.1 an expired read
// deadline would cancel the request's context), and the write deadline
// moves idle ahead as the stream writes, so a stalled client is still cut
// off after idle without progress.
func streamDeadlines(idle time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		now := time.Now()
		_ = rc.SetWriteDeadline(now.Add(idle))
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, idle: idle, last: now}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
}

// extend moves the write deadline, at most once a second.
func (w *deadlineWriter) extend() {
	if now := time.Now(); now.Sub(w.last) >= time.Second {
		w.last = now
		_ = w.rc.SetWriteDeadline(now.Add(w.idle))
	}
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Flush() {
	w.extend()
	_ = w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// longRPCGrace is how much longer than a long RPC's deadline (longRPCs) its
// connection may take to write the answer, the deadline's error included.
const longRPCGrace = 10 * time.Second

// longUnary lets a unary RPC of longRPCs, whose deadline is d, outlive the
// server's ReadTimeout and WriteTimeout (see liftDeadlines).
func longUnary(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, liftDeadlines(w, r, d))
	})
}

// liftDeadlines reads the request's body (up to maxBodyBytes and one byte
// more, so that the handler still refuses a larger one) under the server's
// read deadline, then lifts that deadline (on HTTP/1.1 an expired one
// cancels the request's context) and gives the answer d+longRPCGrace to be
// written. A body that cannot be read is left for the handler to refuse.
func liftDeadlines(w http.ResponseWriter, r *http.Request, d time.Duration) *http.Request {
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		_ = r.Body.Close()
		if err != nil {
			r.Body = errBody{err}
			return r
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(d + longRPCGrace))
	return r
}

// errBody answers the error its body's read met.
type errBody struct{ err error }

func (b errBody) Read([]byte) (int, error) { return 0, b.err }
func (errBody) Close() error               { return nil }
