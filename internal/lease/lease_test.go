package lease_test

import (
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/lease"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second},
		{8, 640 * time.Second}, {9, 15 * time.Minute}, {50, 15 * time.Minute},
	} {
		if got := lease.Backoff(tc.n, 5*time.Second, 15*time.Minute); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
