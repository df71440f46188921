package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/platform/tenant-registry/internal/errs"
)

// Delivery limits.
const (
	// AttemptTimeout: a delivery is a success only when a 2xx arrives
	// within it (connect, TLS, request and answer).
	AttemptTimeout = 10 * time.Second
	// MaxResponseBody is the most of an answer's body read.
	MaxResponseBody = 64 << 10
	// MaxURLLen bounds an endpoint's URL (characters).
	MaxURLLen = 2048
)

// blockedPrefixes are the networks a webhook may not reach unless private
// targets are allowed (WEBHOOK_ALLOW_PRIVATE): besides what netip's
// predicates name (loopback, private, link-local, multicast, unspecified),
// "this network", CGNAT (where some clouds put their metadata service),
// IETF protocol assignments, benchmarking, the reserved class E and
// broadcast, the NAT64 and 6to4 prefixes that embed IPv4 addresses, and
// documentation ranges.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001:db8::/32", "100::/64",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Blocked tells why a webhook may not connect to addr ("" when it may):
// loopback, private (RFC 1918, fc00::/7), link-local (169.254.0.0/16, where
// the cloud metadata service 169.254.169.254 lives, and fe80::/10), CGNAT,
// unspecified, multicast and the other special ranges above. IPv4 mapped
// into IPv6 is judged as IPv4.
func Blocked(addr netip.Addr) string {
	a := addr.Unmap()
	switch {
	case !a.IsValid():
		return "not an IP address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address (cloud metadata lives there)"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return "a reserved address (" + p.String() + ")"
		}
	}
	return ""
}

// CheckURL validates an endpoint's URL at creation: absolute http(s) with a
// host, no user info; unless allowPrivate, https only, and neither a
// literal blocked address nor a name that is loopback by definition
// (localhost). Names are resolved only when connecting (where the dialer
// checks every address, so DNS rebinding does not pass).
func CheckURL(raw string, allowPrivate bool) (*url.URL, error) {
	invalid := func(format string, args ...any) error {
		return errs.Errorf(errs.Invalid, "url: "+format, args...)
	}
	if raw == "" {
		return nil, invalid("required")
	}
	if len([]rune(raw)) > MaxURLLen {
		return nil, invalid("at most %d characters", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return nil, invalid("not a URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate {
			return nil, invalid("must be https (WEBHOOK_ALLOW_PRIVATE is off)")
		}
	default:
		if allowPrivate {
			return nil, invalid("must be an https:// (or, with WEBHOOK_ALLOW_PRIVATE, http://) URL")
		}
		return nil, invalid("must be an https:// URL")
	}
	if u.User != nil {
		return nil, invalid("must not hold user info")
	}
	if u.Fragment != "" {
		return nil, invalid("must not hold a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return nil, invalid("has no host")
	}
	if allowPrivate {
		return u, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if why := Blocked(a); why != "" {
			return nil, invalid("%s is %s (WEBHOOK_ALLOW_PRIVATE is off)", host, why)
		}
		return u, nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || !strings.Contains(h, ".") {
		return nil, invalid("%s is not a public host name (WEBHOOK_ALLOW_PRIVATE is off)", host)
	}
	return u, nil
}

// errBlocked is what the dialer answers for a refused address.
var errBlocked = errors.New("webhook target refused")

// guardControl is the dialer's Control: it runs on every address the
// dialer connects to, after name resolution, so a name that resolves (or
// re-resolves) to a blocked address is refused at connect time. allowAddr,
// when set, lets chosen addresses through (tests of the guard itself).
func guardControl(allowAddr func(netip.AddrPort) bool) func(ctx context.Context, network, address string, _ syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s is not an address", errBlocked, address)
		}
		if allowAddr != nil && allowAddr(ap) {
			return nil
		}
		if why := Blocked(ap.Addr()); why != "" {
			return fmt.Errorf("%w: %s is %s", errBlocked, ap.Addr(), why)
		}
		return nil
	}
}

// clientOptions shape the delivery client; the zero value is production's.
type clientOptions struct {
	allowPrivate bool
	// allowAddr lets chosen addresses through the guard (tests).
	allowAddr func(netip.AddrPort) bool
	// tls replaces the TLS configuration (tests with their own CA).
	tls *tls.Config
}

// newClient returns the delivery client: no proxy, no redirects followed
// (a 3xx is a failed attempt), AttemptTimeout per attempt, and unless
// private targets are allowed, https only and the guard on every connect.
func newClient(o clientOptions) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !o.allowPrivate {
		d.ControlContext = guardControl(o.allowAddr)
	}
	tr := &http.Transport{
		Proxy:                 nil, // never a proxy from the environment: it would connect for us
		DialContext:           d.DialContext,
		TLSClientConfig:       o.tls,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
