package tenant

import (
	"context"

	"github.com/platform/tenant-registry/ent/outbox"
)

// ProvisioningBacklog counts the Keycloak jobs not yet done (the outbox
// backlog gauge): provisioning, renames, and purges that are due — a purge
// scheduled for the end of its grace period is not work waiting yet.
func (s *Service) ProvisioningBacklog(ctx context.Context) (int64, error) {
	n, err := s.client.Outbox.Query().
		Where(outbox.DoneAtIsNil(), outbox.Or(outbox.KindNEQ(kindPurge), outbox.NextAttemptAtLTE(s.clock()))).
		Count(ctx)
	return int64(n), err
}
