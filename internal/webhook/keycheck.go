package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/webhookendpoint"
	"github.com/platform/tenant-registry/internal/secret"
)

// CheckKey tells whether box's key is the one the stored endpoint signing
// secrets were sealed under (the newest endpoint's is checked: all are
// sealed under the key in force). A wrong IDP_SECRET_KEY is an error naming
// it, at start-up, rather than every delivery failing later.
func CheckKey(ctx context.Context, client *ent.Client, box *secret.Box) error {
	e, err := client.WebhookEndpoint.Query().
		Order(ent.Desc(webhookendpoint.FieldCreatedAt)).
		Select(webhookendpoint.FieldSecretSealed).
		First(ctx)
	switch {
	case ent.IsNotFound(err):
		return nil // no endpoint yet
	case err != nil:
		return fmt.Errorf("IDP_SECRET_KEY: read a sealed webhook secret: %w", err)
	}
	err = box.Check(e.SecretSealed)
	switch {
	case errors.Is(err, secret.ErrWrongKey):
		return fmt.Errorf("IDP_SECRET_KEY is not the key the stored webhook signing secrets were sealed under (this key's id is %s): set the key they were sealed with", box.KeyID())
	case err != nil:
		return fmt.Errorf("IDP_SECRET_KEY: a stored webhook signing secret is damaged: %w", err)
	}
	return nil
}
