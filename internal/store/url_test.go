package store_test

import (
	"net/url"
	"testing"

	"github.com/platform/tenant-registry/internal/store"
)

func TestPoolURL(t *testing.T) {
	for _, tc := range []struct {
		name, in         string
		wantMode, wantCT string
	}{
		{"defaults added", "postgres://u@pgbouncer:6432/registry?sslmode=disable", "exec", "5"},
		{"the URL's choice kept", "postgresql://u@db/registry?default_query_exec_mode=simple_protocol&connect_timeout=2", "simple_protocol", "2"},
	} {
		got, err := store.PoolURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if q.Get("default_query_exec_mode") != tc.wantMode || q.Get("connect_timeout") != tc.wantCT {
			t.Errorf("%s: PoolURL(%q) = %q, want exec mode %s and connect_timeout %s", tc.name, tc.in, got, tc.wantMode, tc.wantCT)
		}
	}
	if _, err := store.PoolURL("mysql://db/x"); err == nil {
		t.Error("PoolURL accepted a mysql:// URL")
	}
}
