package server

import (
	"net/http"
	"sync/atomic"
)

// Drain is a replica's "going away" switch, flipped once when a graceful
// shutdown starts (cmd/server on SIGTERM). From then on /readyz answers 503
// and gRPC health NOT_SERVING, so load balancers take the replica out of
// rotation, while every request is still served as before; each response
// carries Connection: close (HTTP/2: a GOAWAY once the streams are done),
// so no keep-alive connection outlives the drain and a balancer never
// sends a request on a connection the server is about to close.
//
// The zero value is not draining. A Drain is safe for concurrent use.
type Drain struct{ on atomic.Bool }

// Begin starts draining; it reports whether this call did (false when it
// had already begun).
func (d *Drain) Begin() bool { return d.on.CompareAndSwap(false, true) }

// Draining reports whether Begin was called.
func (d *Drain) Draining() bool { return d.on.Load() }

// closeWhileDraining asks the client to close its connection after each
// response once draining began.
func (d *Drain) closeWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.Draining() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
