package server

import "crypto/rand"

// maxRequestIDLen bounds an X-Request-Id taken from the caller.
const maxRequestIDLen = 128

// requestID returns the caller's X-Request-Id h when it is sane (1 to 128
// printable ASCII characters, no spaces), else a fresh random id (128 bits,
// 26 base32 characters).
func requestID(h string) string {
	if validRequestID(h) {
		return h
	}
	return rand.Text()
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
