package tenant_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestSlugCheckConstraint: the database itself refuses bad slugs, on both
// stores, for writers that bypass the service (raw SQL).
func TestSlugCheckConstraint(t *testing.T) {
	cases := []struct {
		slug string
		ok   bool
	}{
		{"acme", true},
		{"a-1", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},                    // too short
		{strings.Repeat("a", 64), false}, // too long
		{"-acme", false},                 // leading dash
		{"acme-", false},                 // trailing dash
		{"Acme", false},                  // upper case
		{"ac_me", false},                 // underscore
		{"ac me", false},                 // space
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		for _, c := range cases {
			_, err := st.DB.ExecContext(ctx,
				`INSERT INTO tenants (id, slug, name, status, plan, provisioning_state, created_at, updated_at)
				 VALUES ($1, $2, 'Raw', 'trial', 'starter', 'pending', $3, $3)`,
				uuid.NewString(), c.slug, now)
			if got := err == nil; got != c.ok {
				t.Errorf("insert slug %q: err = %v, want accepted %v", c.slug, err, c.ok)
			}
			// On PostgreSQL the column's own limit, varchar(63), refuses
			// a slug too long before the CHECK does.
			want := "check"
			if st.Postgres() && len(c.slug) > 63 {
				want = "character varying(63)"
			}
			if err != nil && !strings.Contains(strings.ToLower(fmt.Sprint(err)), want) {
				t.Errorf("insert slug %q: %v, want it refused by %s", c.slug, err, want)
			}
		}
	})
}
