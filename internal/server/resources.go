package server

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/tenant"
	"github.com/platform/tenant-registry/internal/webhook"
)

// Resources reads an audit event's target as the API answers it, for the
// webhook messages' data.resource: tenants, API keys, projects and
// entitlements, in the
// same JSON as their GET (other targets have none). It reads through the
// change's transaction, so the resource is the one after the change.
type Resources struct{ Clock clock.Clock }

var _ webhook.ResourceReader = Resources{}

// Resource implements webhook.ResourceReader.
func (r Resources) Resource(ctx context.Context, client *ent.Client, targetType, targetID string) ([]byte, error) {
	id, err := uuid.Parse(targetID)
	if err != nil {
		return nil, nil
	}
	var msg proto.Message
	switch targetType {
	case "tenant":
		t, err := tenant.ReadIn(ctx, client, id, r.Clock())
		if errs.CodeOf(err) == errs.NotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		msg = tenantPB(t)
	case "api_key":
		k, err := client.APIKey.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read api key: %w", err)
		}
		msg = apiKeyPB(apikey.View(k))
	case "project":
		p, err := client.TenantProject.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read project: %w", err)
		}
		msg = projectPB(project.View(p))
	case "entitlement":
		p, err := client.TenantProduct.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read entitlement: %w", err)
		}
		msg = entitlementPB(entitlement.View(p, r.Clock()))
	default:
		return nil, nil
	}
	return jsonMarshal.Marshal(msg)
}
