package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
)

func goldenEvent(version int) audit.Canonical {
	return audit.Canonical{
		Version: version,
		ID:      "7d1c0f7e-3b1a-4a77-9a8e-2f0c6f1d9b01", CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Action: "document.signed", CRUD: "u", GroupID: "00000000-0000-0000-0000-00000000000a", GroupName: "Acme",
		ActorID: "user-42", ActorName: "Ada", ActorType: "user", TargetID: "doc-1", TargetName: "Contract", TargetType: "document",
		SourceIP: "203.0.113.7", Description: "signed", Fields: map[string]string{"b": "2", "a": "1"}, IdempotencyKey: "k-1", ChainSeq: 7,
		AppendedByID: "svc-1", AppendedByType: "service",
	}
}

// TestCanonicalGolden pins the canonical forms: version 1 to the hash the
// code before appenders were recorded computed for this event (so existing
// chains keep verifying), version 2 to SHA-256 over the documented JSON
// written out by hand.
func TestCanonicalGolden(t *testing.T) {
	const v2JSON = `{"v":2,"id":"7d1c0f7e-3b1a-4a77-9a8e-2f0c6f1d9b01","created_at":"2026-03-01T12:00:00.123456Z",` +
		`"action":"document.signed","crud":"u","group_id":"00000000-0000-0000-0000-00000000000a","group_name":"Acme",` +
		`"actor_id":"user-42","actor_name":"Ada","actor_type":"user","target_id":"doc-1","target_name":"Contract",` +
		`"target_type":"document","source_ip":"203.0.113.7","description":"signed","is_failure":false,"is_anonymous":false,` +
		`"fields":{"a":"1","b":"2"},"idempotency_key":"k-1","chain_seq":7,` +
		`"appended_by_id":"svc-1","appended_by_type":"service","appended_by_tenant":""}`
	sum := sha256.Sum256([]byte("ab" + v2JSON))
	tests := []struct {
		version int
		want    string
	}{
		{1, "23aeba8b98527d1fa5845dc4e741ab3268f4930e476bf18c54d215d334e325ee"},
		{2, hex.EncodeToString(sum[:])},
		{3, ""}, // unknown: matches no stored hash
		{0, ""},
	}
	for _, tc := range tests {
		if got := goldenEvent(tc.version).Hash("ab"); got != tc.want {
			t.Errorf("version %d: hash %s, want %s", tc.version, got, tc.want)
		}
	}
}

// TestCanonicalCoversEveryField: changing any field changes the hash of
// version 2; version 1 does not cover the appender.
func TestCanonicalCoversEveryField(t *testing.T) {
	mutations := []struct {
		name     string
		mutate   func(c *audit.Canonical)
		inV1Hash bool
	}{
		{"id", func(c *audit.Canonical) { c.ID = "8d1c0f7e-3b1a-4a77-9a8e-2f0c6f1d9b01" }, true},
		{"created_at", func(c *audit.Canonical) { c.CreatedAt = c.CreatedAt.Add(time.Microsecond) }, true},
		{"action", func(c *audit.Canonical) { c.Action = "document.deleted" }, true},
		{"crud", func(c *audit.Canonical) { c.CRUD = "d" }, true},
		{"group_id", func(c *audit.Canonical) { c.GroupID = "00000000-0000-0000-0000-00000000000b" }, true},
		{"group_name", func(c *audit.Canonical) { c.GroupName = "Globex" }, true},
		{"actor_id", func(c *audit.Canonical) { c.ActorID = "x" }, true},
		{"actor_name", func(c *audit.Canonical) { c.ActorName = "x" }, true},
		{"actor_type", func(c *audit.Canonical) { c.ActorType = "system" }, true},
		{"target_id", func(c *audit.Canonical) { c.TargetID = "x" }, true},
		{"target_name", func(c *audit.Canonical) { c.TargetName = "x" }, true},
		{"target_type", func(c *audit.Canonical) { c.TargetType = "x" }, true},
		{"source_ip", func(c *audit.Canonical) { c.SourceIP = "" }, true},
		{"description", func(c *audit.Canonical) { c.Description = "x" }, true},
		{"is_failure", func(c *audit.Canonical) { c.IsFailure = true }, true},
		{"is_anonymous", func(c *audit.Canonical) { c.IsAnonymous = true }, true},
		{"fields", func(c *audit.Canonical) { c.Fields = map[string]string{"a": "1"} }, true},
		{"idempotency_key", func(c *audit.Canonical) { c.IdempotencyKey = "" }, true},
		{"chain_seq", func(c *audit.Canonical) { c.ChainSeq = 8 }, true},
		{"appended_by_id", func(c *audit.Canonical) { c.AppendedByID = "svc-2" }, false},
		{"appended_by_type", func(c *audit.Canonical) { c.AppendedByType = "user" }, false},
		{"appended_by_tenant", func(c *audit.Canonical) { c.AppendedByTenant = "00000000-0000-0000-0000-00000000000a" }, false},
	}
	for _, version := range []int{1, 2} {
		base := goldenEvent(version).Hash("ab")
		for _, m := range mutations {
			c := goldenEvent(version)
			m.mutate(&c)
			changed := c.Hash("ab") != base
			if want := version == 2 || m.inV1Hash; changed != want {
				t.Errorf("version %d, %s changed: hash changed = %v, want %v", version, m.name, changed, want)
			}
		}
		if goldenEvent(version).Hash("ac") == base {
			t.Errorf("version %d: prev_hash not covered", version)
		}
	}
}
