package sso

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/internal/secret"
)

// CheckKey tells whether box's key is the one the stored client secrets
// were sealed under (one sealed value is checked: all are sealed under the
// key in force). A wrong IDP_SECRET_KEY is an error naming it, at start-up,
// rather than Keycloak getting garbage later.
func CheckKey(ctx context.Context, client *ent.Client, box *secret.Box) error {
	c, err := client.TenantIdpConfig.Query().
		Where(tenantidpconfig.ClientSecretSealedNotNil()).
		Select(tenantidpconfig.FieldClientSecretSealed).
		First(ctx)
	switch {
	case ent.IsNotFound(err) || err == nil && len(*c.ClientSecretSealed) == 0:
		return nil // nothing sealed yet
	case err != nil:
		return fmt.Errorf("IDP_SECRET_KEY: read a sealed client secret: %w", err)
	}
	err = box.Check(*c.ClientSecretSealed)
	switch {
	case errors.Is(err, secret.ErrWrongKey):
		return fmt.Errorf("IDP_SECRET_KEY is not the key the stored identity-provider client secrets were sealed under (this key's id is %s): set the key they were sealed with", box.KeyID())
	case err != nil:
		return fmt.Errorf("IDP_SECRET_KEY: a stored identity-provider client secret is damaged: %w", err)
	}
	return nil
}
