package text_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/platform/tenant-registry/internal/text"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"ascii cut", "abcdefgh", 6, "abc…"},
		{"two-byte runes, cut inside one", strings.Repeat("é", 10), 8, "éé…"},
		{"four-byte rune at the cut", "ab😀cd", 7, "ab…"},
		{"tiny n", "éééé", 2, "é"},
		{"tiny n inside a rune", "éééé", 1, ""},
		{"invalid bytes", "a\xffb", 10, "a\uFFFDb"},
		{"NUL dropped", "a\x00b", 10, "ab"},
	} {
		got := text.Truncate(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("%s: Truncate(%q, %d) = %q, want %q", tc.name, tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) || len(got) > tc.n {
			t.Errorf("%s: %q is not valid UTF-8 of at most %d bytes", tc.name, got, tc.n)
		}
	}
}

func TestDisplayName(t *testing.T) {
	cases := []struct {
		in, want, wantErr string
	}{
		{"  Acme Inc. ", "Acme Inc.", ""},
		{"Ünïcødé ✓", "Ünïcødé ✓", ""},
		{"", "", "name: must not be empty"},
		{" \t ", "", "name: must not be empty"},
		{strings.Repeat("x", 11), "", "name: must be at most 10 characters"},
		{"bad\x00name", "", "name: must not contain control characters"},
		{"bad\xffname", "", "name: must be valid UTF-8"},
	}
	for _, c := range cases {
		got, err := text.DisplayName("name", c.in, 10)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != c.want || gotErr != c.wantErr {
			t.Errorf("DisplayName(%q) = %q, %q; want %q, %q", c.in, got, gotErr, c.want, c.wantErr)
		}
	}
}
