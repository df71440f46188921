// Package deps is how constructors refuse a missing required dependency:
// every New… checks its Deps with Require, so a missing client, clock or
// provisioner is an error at start-up, never a silent default.
package deps

import (
	"fmt"
	"log/slog"
)

// Dep is one required dependency: what it is, for the error, and whether
// it was given.
type Dep struct {
	What  string
	Given bool
}

// Of is the Dep what, given when given is true.
func Of(what string, given bool) Dep { return Dep{What: what, Given: given} }

// Require returns an error naming component and the first dependency not
// given, or nil.
func Require(component string, ds ...Dep) error {
	for _, d := range ds {
		if !d.Given {
			return fmt.Errorf("%s: %s is required", component, d.What)
		}
	}
	return nil
}

// Logger is l, or a logger that discards everything when l is nil: the
// one optional dependency.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
