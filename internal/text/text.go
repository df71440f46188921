// Package text checks and bounds the text that comes from outside: display
// names as the API takes them, and texts cut to fit a column or a message.
package text

import (
	"github.com/platform/tenant-registry/internal/errs"
	"strings"
	"unicode/utf8"
)

// Truncate returns s as text PostgreSQL accepts, of at most n bytes:
// invalid UTF-8 becomes U+FFFD, NUL bytes are dropped, and a longer text is
// cut on a rune boundary and ends in "…" (counted within n). Use it for
// every stored or echoed text that comes from outside (error texts of
// dependencies, user input in messages): cutting bytes can split a
// character, and PostgreSQL then refuses the whole write.
func Truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut, tail := n-len(ellipsis), ellipsis
	if cut < 0 {
		cut, tail = n, ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:max(cut, 0)] + tail
}

// DisplayName trims and checks a display name given as field: not empty,
// valid UTF-8, at most max characters, no control characters.
func DisplayName(field, name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errs.Errorf(errs.Invalid, "%s: must not be empty", field)
	case !utf8.ValidString(name):
		return "", errs.Errorf(errs.Invalid, "%s: must be valid UTF-8", field)
	case utf8.RuneCountInString(name) > max:
		return "", errs.Errorf(errs.Invalid, "%s: must be at most %d characters", field, max)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", errs.Errorf(errs.Invalid, "%s: must not contain control characters", field)
	}
	return name, nil
}
