package registry

import (
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ParseID parses the UUID given as field; empty or malformed input is
// Invalid, with a message naming the field and what it should hold
// (what reads like "a tenant id").
func ParseID(field, what, id string) (uuid.UUID, error) {
	if id == "" {
		return uuid.Nil, Errorf(Invalid, "%s: required", field)
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return uuid.Nil, Errorf(Invalid, "%s: not %s (want a UUID)", field, what)
	}
	return u, nil
}

// CanonicalID returns the canonical (lower-case, hyphenated) form of a UUID
// given in any case, or id unchanged when it is not one (it then matches
// nothing but itself).
func CanonicalID(id string) string {
	if len(id) != 36 {
		return id
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return id
	}
	return u.String()
}

// ParseTenantID parses a tenant id given as field.
func ParseTenantID(field, id string) (uuid.UUID, error) { return ParseID(field, "a tenant id", id) }

// DisplayName trims and checks a display name given as field: not empty,
// valid UTF-8, at most max characters, no control characters.
func DisplayName(field, name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", Errorf(Invalid, "%s: must not be empty", field)
	case !utf8.ValidString(name):
		return "", Errorf(Invalid, "%s: must be valid UTF-8", field)
	case utf8.RuneCountInString(name) > max:
		return "", Errorf(Invalid, "%s: must be at most %d characters", field, max)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", Errorf(Invalid, "%s: must not contain control characters", field)
	}
	return name, nil
}
