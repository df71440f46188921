package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/cursor"
)

// fleet is many tenants with many keys, written by SQL the way the service
// stores them (internal/apikey: "trk_" + 43 base64url characters, the
// HMAC-SHA-256 of the key under API_KEY_SECRET, the display prefix): keys[i]
// belongs to tenants[i/perTenant]. Every tenant is active with two active
// products.
type fleet struct {
	tenants []string
	keys    []string
}

func seedFleet(ctx context.Context, db *sql.DB, secret []byte, runID string, tenants, perTenant int) (*fleet, error) {
	f := &fleet{}
	slugs := make([]string, tenants)
	for i := range tenants {
		f.tenants = append(f.tenants, uuid.NewString())
		slugs[i] = fmt.Sprintf("fleet-%s-%d", runID, i)
	}
	if _, err := db.ExecContext(ctx, `
INSERT INTO tenants (id, created_at, updated_at, slug, name, status, plan, provisioning_state)
SELECT unnest($1::text[])::uuid, now(), now(), unnest($2::text[]), 'Fleet tenant', 'active', 'professional', 'provisioned'`,
		f.tenants, slugs); err != nil {
		return nil, fmt.Errorf("seed fleet tenants: %w", err)
	}
	if _, err := db.ExecContext(ctx, `
INSERT INTO tenant_products (id, created_at, updated_at, product, status, tenant_id)
SELECT gen_random_uuid(), now(), now(), p, 'active', t::uuid
FROM unnest($1::text[]) AS t CROSS JOIN (VALUES ('certifai'), ('compliance')) AS v(p)`, f.tenants); err != nil {
		return nil, fmt.Errorf("seed fleet products: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	const batch = 10_000
	for start := 0; start < tenants*perTenant; start += batch {
		n := min(batch, tenants*perTenant-start)
		ids, prefixes, hashes, owners := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for j := range n {
			var raw [32]byte
			_, _ = rand.Read(raw[:])
			key := "trk_" + base64.RawURLEncoding.EncodeToString(raw[:])
			mac.Reset()
			mac.Write([]byte(key))
			f.keys = append(f.keys, key)
			ids[j], prefixes[j], hashes[j] = uuid.NewString(), key[:12], hex.EncodeToString(mac.Sum(nil))
			owners[j] = f.tenants[(start+j)/perTenant]
		}
		if _, err := db.ExecContext(ctx, `
INSERT INTO api_keys (id, created_at, updated_at, name, prefix, hash, scopes, created_by, tenant_id)
SELECT unnest($1::text[])::uuid, now(), now(), 'fleet', unnest($2::text[]), decode(unnest($3::text[]), 'hex'),
  '["read"]'::jsonb, 'bench', unnest($4::text[])::uuid`, ids, prefixes, hashes, owners); err != nil {
			return nil, fmt.Errorf("seed fleet keys: %w", err)
		}
	}
	_, err := db.ExecContext(ctx, "ANALYZE tenants; ANALYZE tenant_products; ANALYZE api_keys")
	return f, err
}

// seedListTenants inserts n tenants in one INSERT … SELECT generate_series,
// a second apart going back from now, with statuses and plans in turn
// (slugs "list-<run>-<i>", names "List tenant <i>").
func seedListTenants(ctx context.Context, db *sql.DB, runID string, n int) error {
	_, err := db.ExecContext(ctx, `
INSERT INTO tenants (id, created_at, updated_at, slug, name, status, plan, provisioning_state)
SELECT gen_random_uuid(), now() - i * interval '1 second', now() - i * interval '1 second',
  'list-' || $1 || '-' || i, 'List tenant ' || i,
  (ARRAY['trial', 'active', 'frozen'])[1 + i % 3]::tenant_status,
  (ARRAY['starter', 'professional', 'enterprise'])[1 + (i / 3) % 3]::tenant_plan, 'provisioned'
FROM generate_series(1, $2::bigint) AS i`, runID, n)
	if err != nil {
		return fmt.Errorf("seed list tenants: %w", err)
	}
	_, err = db.ExecContext(ctx, "ANALYZE tenants")
	return err
}

// rareEvents is how many events the rare actor and the rare target have.
const rareEvents = 10

// deepPageCursor returns the cursor of page `page`: the keyset position of
// the last row of page-1, found by SQL and encoded with internal/cursor the
// way audit.List does, under the server's API_KEY_SECRET. If the service
// rejects it (its cursor scope changed), it walks the pages over HTTP
// instead.
func deepPageCursor(ctx context.Context, db *sql.DB, api *apiClient, listURL, tenantID string, secret []byte, pageSize, page int) (string, error) {
	var pos cursor.Position
	err := db.QueryRowContext(ctx, `SELECT created_at, id FROM audit_log WHERE group_id = $1
		ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1`, tenantID, (page-1)*pageSize-1).Scan(&pos.Time, &pos.ID)
	if err != nil {
		return "", fmt.Errorf("page %d position: %w", page, err)
	}
	pager, err := cursor.NewPager(secret)
	if err != nil {
		return "", err
	}
	c := pager.Encode("audit_events", []string{tenantID, "", "", "", "", "", "", ""}, pos)
	if err := api.call(http.MethodGet, listURL+"&cursor="+url.QueryEscape(c), "", nil); err == nil {
		return c, nil
	}
	fmt.Fprintf(os.Stderr, "bench: the service refused the computed cursor; walking %d pages\n", page-1)
	c = ""
	for range page - 1 {
		var res struct {
			NextCursor string `json:"next_cursor"`
		}
		u := listURL
		if c != "" {
			u += "&cursor=" + url.QueryEscape(c)
		}
		if err := api.call(http.MethodGet, u, "", &res); err != nil {
			return "", err
		}
		if c = res.NextCursor; c == "" {
			return "", fmt.Errorf("fewer than %d pages", page)
		}
	}
	return c, nil
}
