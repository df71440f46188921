package main

import (
	"runtime/debug"
	"runtime/metrics"
)

// The service's garbage-collector defaults, for the process (main), where
// the environment does not set them (README, "Memory and the GC"):
//
//   - GOGC=400: collect when the heap has grown by four times what is live.
//     The hot paths allocate a few kilobytes a request while little stays
//     live (a few MB with the caches warm), so at GOGC=100 the collector ran
//     ten times a second at 5,000 verifies/s and each cycle took a core's
//     share from the requests: the tail, not the median, paid for it.
//   - GOMEMLIMIT=64MiB: a soft limit on the Go heap and runtime, which
//     takes over from GOGC once four times the live heap would pass it — so
//     100,000 cached API keys stay within the memory budget. Soft: a burst
//     of live data above it (large list pages from many clients) makes the
//     collector work harder (at most half the CPU, the runtime's own cap),
//     it is never an out-of-memory error; the container's limit is well
//     above it.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 64 << 20
)

// applyGCDefaults applies the defaults that getenv does not override. It
// is main's: the settings are the process's (the tests' in-process servers
// leave the test binary's alone).
func applyGCDefaults(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// gcSettings answers the GC settings in force: GOGC (-1 when off) and the
// soft memory limit in bytes (math.MaxInt64 when none).
func gcSettings() (gcPercent int, memoryLimit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}
