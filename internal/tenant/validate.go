package tenant

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/platform/tenant-registry/internal/errs"
)

// MaxNameLen bounds a tenant's display name (in characters).
const MaxNameLen = 200

// ValidateSlug checks the slug rule of the README's API section,
// ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$, the same rule the tenants.slug CHECK
// constraint enforces.
func ValidateSlug(slug string) error {
	if n := utf8.RuneCountInString(slug); n < 3 || n > 63 {
		return errs.Errorf(errs.Invalid, "slug: must be 3 to 63 characters, got %d", n)
	}
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(slug)-1 {
				return errs.Errorf(errs.Invalid, "slug: must not start or end with a dash")
			}
		default:
			return errs.Errorf(errs.Invalid, "slug: only lower-case letters, digits and inner dashes are allowed")
		}
	}
	return nil
}

// validateAdmin checks the optional first admin of a new tenant.
func validateAdmin(in *CreateInput) error {
	in.AdminEmail = strings.TrimSpace(in.AdminEmail)
	in.AdminName = strings.TrimSpace(in.AdminName)
	if in.AdminEmail == "" {
		if in.AdminName != "" {
			return errs.Errorf(errs.Invalid, "admin_email: required when admin_name is given")
		}
		return nil
	}
	addr, err := mail.ParseAddress(in.AdminEmail)
	if err != nil || addr.Address != in.AdminEmail || len(in.AdminEmail) > 254 {
		return errs.Errorf(errs.Invalid, "admin_email: not an email address")
	}
	if utf8.RuneCountInString(in.AdminName) > MaxNameLen {
		return errs.Errorf(errs.Invalid, "admin_name: must be at most %d characters", MaxNameLen)
	}
	return nil
}
