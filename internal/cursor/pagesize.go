package cursor

import "github.com/platform/tenant-registry/internal/registry"

// Page sizes of every list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// PageSize returns the page size to use for a requested one: the default
// for 0, at most MaxPageSize; negative is invalid.
func PageSize(requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, registry.Errorf(registry.Invalid, "page_size: must not be negative")
	case requested == 0:
		return DefaultPageSize, nil
	case requested > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(requested), nil
}
