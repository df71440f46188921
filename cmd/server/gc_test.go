package main

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestFloorGCPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, gcMaxTuned},
		{1 << 10, gcMaxTuned}, // a near-empty heap: capped
		{4 << 20, 700},        // 4 MiB live: the next cycle at 32 MiB
		{8 << 20, 300},        // 8 MiB: at 32
		{16 << 20, 100},       // 16 MiB: doubling reaches the floor
		{20 << 20, gcPercent}, // above half the floor: Go's default
		{500 << 20, gcPercent},
	} {
		if got := floorGCPercent(tc.live); got != tc.want {
			t.Errorf("floorGCPercent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

func TestAfterEachGC(t *testing.T) {
	var calls atomic.Int64
	afterEachGC(func() { calls.Add(1) })
	for deadline := time.Now().Add(10 * time.Second); calls.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("after-GC hook ran %d times in 10s of runtime.GC calls, want 3", calls.Load())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine runs it
	}
}
