// Package ids parses and compares the service's ids (UUIDs): any case
// of a UUID names one thing, and answers use the canonical lower case.
package ids

import (
	"github.com/platform/tenant-registry/internal/errs"

	"github.com/google/uuid"
)

// ParseID parses the UUID given as field; empty or malformed input is
// errs.Invalid, with a message naming the field and what it should hold
// (what reads like "a tenant id").
func Parse(field, what, id string) (uuid.UUID, error) {
	if id == "" {
		return uuid.Nil, errs.Errorf(errs.Invalid, "%s: required", field)
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return uuid.Nil, errs.Errorf(errs.Invalid, "%s: not %s (want a UUID)", field, what)
	}
	return u, nil
}

// CanonicalID returns id in the canonical form of a UUID (lower case), or
// id itself when it is not a UUID.
func Canonical(id string) string {
	if len(id) != 36 {
		return id
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return id
	}
	return u.String()
}

// SameID reports whether a and b name the same UUID, in any case.
func Same(a, b string) bool { return Canonical(a) == Canonical(b) }

// ParseTenantID parses a tenant id given as field.
func ParseTenant(field, id string) (uuid.UUID, error) { return Parse(field, "a tenant id", id) }
