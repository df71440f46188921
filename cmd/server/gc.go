package main

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The server's garbage-collector policy, for its process (main), unless
// GOGC is set (README, "Memory and the GC"): a heap floor. Go's default
// (GOGC=100) collects when the heap has doubled what is live. The hot paths
// allocate a few kilobytes a request and keep little — a few MB live with
// the caches warm — so at 5,000 verifies/s the collector ran ten times a
// second, and the requests in flight during each cycle made the p99.
// After every cycle the floor sets GOGC so that the next one starts no
// earlier than at gcHeapFloor of heap, and never below Go's 100:
//
//	GOGC = max(100, 100 × (gcHeapFloor / live − 1))
//
// A small live heap then runs a cycle every few seconds; a large one (a
// full key cache, big audit pages from many clients) is collected exactly
// as Go's default would, so the floor adds no memory beyond gcHeapFloor and
// never makes the collector work harder (a memory limit would: set too low
// it has the collector chase a live heap that is above it).
const (
	gcHeapFloor = 32 << 20
	gcPercent   = 100    // GOGC's default, what the floor never goes below
	gcMaxTuned  = 10_000 // the GOGC of a near-empty heap
)

// applyGCPolicy starts the heap floor unless getenv sets GOGC (then the
// runtime's own reading of it stands). It is main's: the setting is the
// process's, and the tests' in-process servers leave the test binary's GC
// alone.
func applyGCPolicy(getenv func(string) string) {
	if getenv("GOGC") != "" {
		return
	}
	tuneGC() // before the first cycle: what is live is the binary's globals
	afterEachGC(tuneGC)
	gcFloorOn.Store(true)
}

// gcFloorOn tells that applyGCPolicy started the floor.
var gcFloorOn atomic.Bool

// tuneGC sets GOGC for the live heap the last cycle left.
func tuneGC() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	debug.SetGCPercent(floorGCPercent(s[0].Value.Uint64()))
}

// floorGCPercent is the GOGC that puts the next cycle at gcHeapFloor for a
// live heap of live bytes, and at least gcPercent.
func floorGCPercent(live uint64) int {
	if live == 0 {
		return gcMaxTuned
	}
	p := int(100*gcHeapFloor/live) - 100
	return min(max(p, gcPercent), gcMaxTuned)
}

// afterEachGC calls f after every collection, from the finalizer goroutine:
// the finalizer of an object nobody references runs once a cycle has found
// it unreachable, and arms the next one. (The object holds a pointer, so
// the tiny allocator, whose objects may never be finalized, does not take
// it.)
func afterEachGC(f func()) {
	runtime.SetFinalizer(&gcSentinel{f: f}, func(s *gcSentinel) {
		s.f()
		afterEachGC(s.f)
	})
}

type gcSentinel struct{ f func() }

// gcInForce describes, for the start-up log, the collector's policy (the
// heap floor, or GOGC as set: -1 when off) and the soft memory limit
// ("none" unless set).
func gcInForce() (policy, memoryLimit string) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	policy = fmt.Sprintf("GOGC=%d", int(s[0].Value.Uint64()))
	if gcFloorOn.Load() {
		policy = fmt.Sprintf("heap floor %dMiB (GOGC ≥ %d)", gcHeapFloor>>20, gcPercent)
	}
	memoryLimit = "none"
	if l := s[1].Value.Uint64(); l != math.MaxInt64 {
		memoryLimit = fmt.Sprintf("%dMiB", l>>20)
	}
	return policy, memoryLimit
}
