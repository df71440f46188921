package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestDeadlineInterceptor(t *testing.T) {
	var got time.Duration
	var had bool
	next := func(ctx context.Context, _ connect.AnyRequest) (connect.AnyResponse, error) {
		dl, ok := ctx.Deadline()
		had, got = ok, time.Until(dl)
		return nil, nil
	}
	call := deadlineInterceptor{d: 10 * time.Second}.WrapUnary(next)
	req := connect.NewRequest(&struct{}{})

	// No deadline from the client: the default.
	_, _ = call(context.Background(), req)
	if !had || got <= 9*time.Second || got > 10*time.Second {
		t.Errorf("no client deadline: got %v (%v), want about 10s", got, had)
	}
	// A shorter one is kept.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = call(ctx, req)
	if got > 2*time.Second {
		t.Errorf("client asked 2s: got %v", got)
	}
	// A longer one is cut to the default.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	_, _ = call(ctx2, req)
	if got > 10*time.Second {
		t.Errorf("client asked 1h: got %v, want at most 10s", got)
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc": true, "0f8fad5b-d9cb-469f-a165-70867728950e": true, string(make([]byte, 129)): false,
		"": false, "a b": false, "é": false, "x\n": false,
	} {
		if validRequestID(id) != want {
			t.Errorf("validRequestID(%q) = %v", id, !want)
		}
	}
}

// TestStreamDeadlines: a stream longer than the server's ReadTimeout and
// WriteTimeout completes under streamDeadlines, and is cut without it.
func TestStreamDeadlines(t *testing.T) {
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "line %d\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintln(w, "end")
	})
	lines := func(h http.Handler) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
		go srv.Serve(ln)
		defer srv.Close()
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			return 0
		}
		defer res.Body.Close()
		n := 0
		for sc := bufio.NewScanner(res.Body); sc.Scan(); {
			n++
		}
		return n
	}
	if n := lines(streamDeadlines(time.Second, stream)); n != 9 {
		t.Errorf("with streamDeadlines: %d lines, want 9", n)
	}
	if n := lines(stream); n >= 9 {
		t.Errorf("without streamDeadlines: %d lines; the control should have been cut", n)
	}
}
