package registry

import (
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
