package apikey

import (
	"time"

	"github.com/google/uuid"
)

// Touch records a use of key id at now, as a valid verify does.
func (s *Service) Touch(id uuid.UUID, now time.Time) { s.usage.touch(id, now) }
