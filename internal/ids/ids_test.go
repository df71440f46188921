package ids_test

import (
	"testing"

	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
)

func TestParseID(t *testing.T) {
	cases := []struct {
		in, wantMsg string
	}{
		{"00000000-0000-0000-0000-000000000001", ""},
		{"", "tenant_id: required"},
		{"acme", "tenant_id: not a tenant id (want a UUID)"},
		{"{00000000-0000-0000-0000-000000000001}", "tenant_id: not a tenant id (want a UUID)"},
		{"urn:uuid:00000000-0000-0000-0000-000000000001", "tenant_id: not a tenant id (want a UUID)"},
	}
	for _, c := range cases {
		_, err := ids.ParseTenant("tenant_id", c.in)
		got := ""
		if err != nil {
			got = err.Error()
			if errs.CodeOf(err) != errs.Invalid {
				t.Errorf("%q: code %q, want invalid", c.in, errs.CodeOf(err))
			}
		}
		if got != c.wantMsg {
			t.Errorf("ParseTenantID(%q) = %q, want %q", c.in, got, c.wantMsg)
		}
	}
}
