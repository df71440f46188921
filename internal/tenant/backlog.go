package tenant

import (
	"context"

	"github.com/platform/tenant-registry/ent/outbox"
)

// ProvisioningBacklog counts the Keycloak provisioning jobs not yet done
// (the outbox backlog gauge).
func (s *Service) ProvisioningBacklog(ctx context.Context) (int64, error) {
	n, err := s.client.Outbox.Query().Where(outbox.DoneAtIsNil()).Count(ctx)
	return int64(n), err
}
