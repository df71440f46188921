// Package errs is tenant-registry's domain errors: a Code and a message
// that is safe to show the caller. The server translates them to wire codes
// once, at the edge (internal/server/errors.go); anything else is an
// internal error, logged there and shown generically.
package errs

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. The server maps each code to a Connect
// code (and so to an HTTP status) in one place.
type Code string

const (
	Invalid         Code = "invalid"            // bad input: invalid_argument, 400
	NotFound        Code = "not_found"          // 404; also what a caller sees for other tenants' things
	Conflict        Code = "conflict"           // already exists: already_exists, 409
	Precondition    Code = "precondition"       // wrong state for this operation: failed_precondition, 409
	Unauthenticated Code = "unauthenticated"    // 401
	Forbidden       Code = "forbidden"          // permission_denied, 403
	Unavailable     Code = "unavailable"        // a dependency is down: 503
	Exhausted       Code = "resource_exhausted" // 429
	Internal        Code = "internal"           // a bug or an unexpected failure: logged, shown generically
)

// Error is an error whose message is safe to show to the caller.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted, caller-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err, or Internal when err is not a domain
// error (or nil when err is nil).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// MessageOf returns the caller-safe message of err; for anything but a
// domain error it is a generic text, so internal details never leak.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
