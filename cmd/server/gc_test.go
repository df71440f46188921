package main

import (
	"runtime/debug"
	"testing"
)

func TestGCDefaults(t *testing.T) {
	gcPercent, limit := gcSettings()
	t.Cleanup(func() {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(limit)
	})
	for _, tc := range []struct {
		name      string
		env       map[string]string
		set       func() // what the runtime read from the environment
		wantGC    int
		wantLimit int64
	}{
		{"defaults", nil, func() { debug.SetGCPercent(100); debug.SetMemoryLimit(1 << 40) }, defaultGCPercent, defaultMemoryLimit},
		{"GOGC set", map[string]string{"GOGC": "150"}, func() { debug.SetGCPercent(150); debug.SetMemoryLimit(1 << 40) }, 150, defaultMemoryLimit},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, func() { debug.SetGCPercent(100); debug.SetMemoryLimit(1 << 30) }, defaultGCPercent, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set()
			applyGCDefaults(func(k string) string { return tc.env[k] })
			gotGC, gotLimit := gcSettings()
			if gotGC != tc.wantGC || gotLimit != tc.wantLimit {
				t.Errorf("GOGC %d, memory limit %d; want %d, %d", gotGC, gotLimit, tc.wantGC, tc.wantLimit)
			}
		})
	}
}
