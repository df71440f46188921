package tenant

import (
	"regexp"
	"testing"

	"github.com/platform/tenant-registry/internal/errs"
)

// slugRule is the slug rule of the README's API section, the reference
// ValidateSlug must agree with (the tenants.slug CHECK constraint spells the
// same rule portably).
var slugRule = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// FuzzValidateSlug: ValidateSlug accepts exactly what the regexp accepts,
// and rejects with invalid_argument. Seeds: testdata/fuzz/FuzzValidateSlug.
func FuzzValidateSlug(f *testing.F) {
	for _, s := range []string{
		"acme", "a-b", "abc", "ab", "a", "", "-ab", "ab-", "a--b", "Acme", "acme inc",
		"0-0", "x\x00y", "äbc", "acme\n", "\nacme",
		"a23456789012345678901234567890123456789012345678901234567890123",  // 63
		"a234567890123456789012345678901234567890123456789012345678901234", // 64
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateSlug(s)
		if want := slugRule.MatchString(s); (err == nil) != want {
			t.Fatalf("ValidateSlug(%q) = %v, the rule says valid=%v", s, err, want)
		}
		if err != nil && errs.CodeOf(err) != errs.Invalid {
			t.Fatalf("ValidateSlug(%q): %v is not Invalid", s, err)
		}
	})
}
