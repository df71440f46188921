package registry_test

import (
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/registry"
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
		_, err := registry.ParseTenantID("tenant_id", c.in)
		got := ""
		if err != nil {
			got = err.Error()
			if registry.ErrorCode(err) != registry.Invalid {
				t.Errorf("%q: code %q, want invalid", c.in, registry.ErrorCode(err))
			}
		}
		if got != c.wantMsg {
			t.Errorf("ParseTenantID(%q) = %q, want %q", c.in, got, c.wantMsg)
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
		got, err := registry.DisplayName("name", c.in, 10)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != c.want || gotErr != c.wantErr {
			t.Errorf("DisplayName(%q) = %q, %q; want %q, %q", c.in, got, gotErr, c.want, c.wantErr)
		}
	}
}
