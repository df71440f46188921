package deps_test

import (
	"testing"

	"github.com/platform/tenant-registry/internal/deps"
)

func TestRequire(t *testing.T) {
	cases := []struct {
		ds   []deps.Dep
		want string
	}{
		{nil, ""},
		{[]deps.Dep{deps.Of("a clock", true)}, ""},
		{[]deps.Dep{deps.Of("a clock", true), deps.Of("a pager", false), deps.Of("a store", false)}, "svc: a pager is required"},
	}
	for _, c := range cases {
		got := ""
		if err := deps.Require("svc", c.ds...); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("Require(%v) = %q, want %q", c.ds, got, c.want)
		}
	}
	if deps.Logger(nil) == nil {
		t.Error("Logger(nil) is nil, want a discarding logger")
	}
}
