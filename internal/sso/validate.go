package sso

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/platform/tenant-registry/internal/errs"
)

// Limits of a configuration.
const (
	// MaxDomains bounds the email domains of one identity provider.
	MaxDomains = 20
	maxURLLen  = 2048
	// maxClientID and maxSecret bound the OIDC client's id and secret.
	maxClientID = 255
	maxSecret   = 1024
	maxEntityID = 2048
	maxCertLen  = 16384
	maxNameLen  = 200
)

// checkURL checks an absolute https URL (http too when allowHTTP: dev)
// without user info or fragment.
func checkURL(field, raw string, allowHTTP bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errs.Errorf(errs.Invalid, "%s: required", field)
	}
	if utf8.RuneCountInString(raw) > maxURLLen {
		return "", errs.Errorf(errs.Invalid, "%s: must be at most %d characters", field, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", errs.Errorf(errs.Invalid, "%s: must be an absolute https URL", field)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		if allowHTTP {
			return "", errs.Errorf(errs.Invalid, "%s: must be an http(s) URL", field)
		}
		return "", errs.Errorf(errs.Invalid, "%s: must be an absolute https URL", field)
	}
	if u.User != nil {
		return "", errs.Errorf(errs.Invalid, "%s: must not hold user info", field)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", errs.Errorf(errs.Invalid, "%s: must not have a fragment", field)
	}
	return raw, nil
}

// normalizeDomains lower-cases, trims (and drops a trailing dot from) each
// domain, checks it is a DNS name of at least two labels, removes
// duplicates and sorts them.
func normalizeDomains(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errs.Errorf(errs.Invalid, "domains: at least one email domain is required")
	}
	out := make([]string, 0, len(in))
	for _, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if !isDNSName(d) {
			return nil, errs.Errorf(errs.Invalid, "domains: %q is not a DNS name", short(d))
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if len(out) > MaxDomains {
		return nil, errs.Errorf(errs.Invalid, "domains: at most %d", MaxDomains)
	}
	slices.Sort(out)
	return out, nil
}

// short shortens client input quoted in an error.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// isDNSName: 2+ labels of a-z, 0-9 and inner dashes, each 1–63 long, at
// most 253 in all, the last not all digits.
func isDNSName(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// parseCertificate accepts a PEM CERTIFICATE block or base64 DER and
// answers the base64 DER form (what Keycloak's signingCertificate takes),
// once it parses as an X.509 certificate.
func parseCertificate(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errs.Errorf(errs.Invalid, "saml.signing_certificate: required with entity_id and sso_url")
	}
	if len(raw) > maxCertLen {
		return "", errs.Errorf(errs.Invalid, "saml.signing_certificate: must be at most %d characters", maxCertLen)
	}
	var der []byte
	if strings.HasPrefix(raw, "-----BEGIN") {
		b, rest := pem.Decode([]byte(raw))
		if b == nil || b.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
			return "", errs.Errorf(errs.Invalid, "saml.signing_certificate: not one PEM CERTIFICATE block")
		}
		der = b.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(raw), ""))
		if err != nil {
			return "", errs.Errorf(errs.Invalid, "saml.signing_certificate: neither PEM nor base64 DER")
		}
		der = b
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return "", errs.Errorf(errs.Invalid, "saml.signing_certificate: not an X.509 certificate")
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// checkEmail checks an invitee's address; it answers it lower case.
func checkEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", errs.Errorf(errs.Invalid, "email: required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return "", errs.Errorf(errs.Invalid, "email: not an email address")
	}
	return strings.ToLower(email), nil
}
