package server

import (
	"testing"

	"github.com/platform/tenant-registry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
