// Package clock is the service's notion of now: logic never calls
// time.Now directly, so tests inject a clock they control.
package clock

import "time"

// Clock tells the time. Logic never calls time.Now directly: tests inject a
// clock they control.
type Clock func() time.Time

// SystemClock is the real clock, in UTC, truncated to microseconds (what
// PostgreSQL stores), so values read back compare equal.
func System() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
