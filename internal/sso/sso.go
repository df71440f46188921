// Package sso is a tenant's way in: its own identity provider for single
// sign-on (an OIDC or SAML provider for a set of email domains, provisioned
// in Keycloak as an identity provider linked to the tenant's organisation)
// and invitations of its users. Every change is audited in its
// transaction; the Keycloak side runs through the durable outbox (jobs.go),
// retried until it lands.
//
// The OIDC client secret is sealed (internal/secret, AES-256-GCM under
// IDP_SECRET_KEY, bound to the tenant) before it reaches the database and
// is opened only to hand it to Keycloak: no answer, log line or audit
// event holds it.
package sso

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/ent/tenantidpdomain"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/deps"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/store"
)

// Provisioning states of an identity provider (as a tenant's
// provisioning_state).
const (
	StatePending     = "pending"
	StateProvisioned = "provisioned"
	StateFailed      = "failed"
)

// Protocols.
const (
	OIDC = "oidc"
	SAML = "saml"
)

// Alias is the Keycloak identity provider alias of the tenant with slug:
// derived, so that removing it needs nothing stored (the purge of a tenant
// calls keycloak.IdentityProviders.RemoveIdentityProvider with it).
func Alias(slug string) string { return slug + "-sso" }

// Config is a tenant's identity provider as the service answers it: never
// the client secret.
type Config struct {
	TenantID uuid.UUID
	Protocol string
	// OIDC.
	Issuer, ClientID string
	// SAML.
	MetadataURL, EntityID, SSOURL, SigningCertificate string
	Domains                                           []string
	HasClientSecret                                   bool
	State                                             string
	Alias                                             string
	CreatedAt, UpdatedAt                              time.Time
}

// OIDCInput is an OIDC provider as set.
type OIDCInput struct {
	Issuer, ClientID string
	// ClientSecret: empty keeps the stored one (of an OIDC configuration).
	ClientSecret string
}

// SAMLInput is a SAML provider as set: a metadata URL, or entity id, SSO
// URL and signing certificate.
type SAMLInput struct {
	MetadataURL, EntityID, SSOURL, SigningCertificate string
}

// SetInput is what SetIdpConfig takes.
type SetInput struct {
	TenantID string
	Protocol string
	OIDC     *OIDCInput
	SAML     *SAMLInput
	Domains  []string
}

// Service manages tenants' identity providers and invitations.
type Service struct {
	client         *ent.Client
	audit          *audit.Recorder
	clock          clock.Clock
	box            *secret.Box
	idps           keycloak.IdentityProviders
	inviter        keycloak.Inviter
	allowHTTP      bool
	hideInviteURLs bool
	log            *slog.Logger
	jobs           *outbox.Runner[result]
}

// Deps are what a Service needs.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Clock    clock.Clock
	// Box seals the OIDC client secrets (IDP_SECRET_KEY).
	Box *secret.Box
	// IdentityProviders and Inviter are Keycloak (keycloak.HTTPAdapter, or
	// keycloak.Mock in dev).
	IdentityProviders keycloak.IdentityProviders
	Inviter           keycloak.Inviter
	// AllowHTTP accepts http:// provider URLs (APP_ENV=dev only).
	AllowHTTP bool
	// HideInviteURLs discards invite URLs from answers (prod).
	HideInviteURLs bool
	// Logger reports the outbox worker's work; nil discards it.
	Logger *slog.Logger
}

// NewService returns a Service; every dependency but Logger is required.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("sso",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("an audit recorder", d.Recorder != nil),
		deps.Of("a clock", d.Clock != nil),
		deps.Of("a secret box (IDP_SECRET_KEY)", d.Box != nil),
		deps.Of("a Keycloak identity-provider admin", d.IdentityProviders != nil),
		deps.Of("a Keycloak inviter", d.Inviter != nil),
	); err != nil {
		return nil, err
	}
	s := &Service{
		client: d.Client, audit: d.Recorder, clock: d.Clock, box: d.Box, idps: d.IdentityProviders,
		inviter: d.Inviter, allowHTTP: d.AllowHTTP, hideInviteURLs: d.HideInviteURLs, log: deps.Logger(d.Logger),
	}
	s.jobs = s.newRunner()
	return s, nil
}

// secretAAD binds a sealed client secret to its tenant and column: a
// ciphertext copied into another tenant's row does not open.
func secretAAD(tenantID uuid.UUID) []byte {
	return []byte("tenant_idp_config.client_secret_sealed:" + tenantID.String())
}

// valid is a checked SetInput.
type valid struct {
	protocol                                          tenantidpconfig.Protocol
	issuer, clientID, secret                          string
	metadataURL, entityID, ssoURL, signingCertificate string
	domains                                           []string
}

func (s *Service) validate(in SetInput) (valid, error) {
	var v valid
	var err error
	switch in.Protocol {
	case OIDC:
		v.protocol = tenantidpconfig.ProtocolOidc
		if in.SAML != nil && *in.SAML != (SAMLInput{}) {
			return v, errs.Errorf(errs.Invalid, "saml: not allowed with protocol oidc")
		}
		if in.OIDC == nil {
			return v, errs.Errorf(errs.Invalid, "oidc: required with protocol oidc (issuer, client_id, client_secret)")
		}
		if v.issuer, err = checkURL("oidc.issuer", in.OIDC.Issuer, s.allowHTTP); err != nil {
			return v, err
		}
		v.clientID = strings.TrimSpace(in.OIDC.ClientID)
		switch n := utf8.RuneCountInString(v.clientID); {
		case n == 0:
			return v, errs.Errorf(errs.Invalid, "oidc.client_id: required")
		case n > maxClientID:
			return v, errs.Errorf(errs.Invalid, "oidc.client_id: must be at most %d characters", maxClientID)
		}
		v.secret = in.OIDC.ClientSecret
		if len(v.secret) > maxSecret {
			return v, errs.Errorf(errs.Invalid, "oidc.client_secret: must be at most %d bytes", maxSecret)
		}
		if v.secret != "" && strings.TrimSpace(v.secret) == "" {
			return v, errs.Errorf(errs.Invalid, "oidc.client_secret: must not be blank")
		}
	case SAML:
		v.protocol = tenantidpconfig.ProtocolSaml
		if in.OIDC != nil && *in.OIDC != (OIDCInput{}) {
			return v, errs.Errorf(errs.Invalid, "oidc: not allowed with protocol saml")
		}
		if in.SAML == nil {
			return v, errs.Errorf(errs.Invalid, "saml: required with protocol saml (metadata_url, or entity_id, sso_url and signing_certificate)")
		}
		m := in.SAML
		explicit := m.EntityID != "" || m.SSOURL != "" || m.SigningCertificate != ""
		switch {
		case m.MetadataURL != "" && explicit:
			return v, errs.Errorf(errs.Invalid, "saml: either metadata_url, or entity_id, sso_url and signing_certificate, not both")
		case m.MetadataURL != "":
			if v.metadataURL, err = checkURL("saml.metadata_url", m.MetadataURL, s.allowHTTP); err != nil {
				return v, err
			}
		case explicit:
			v.entityID = strings.TrimSpace(m.EntityID)
			switch n := utf8.RuneCountInString(v.entityID); {
			case n == 0:
				return v, errs.Errorf(errs.Invalid, "saml.entity_id: required with sso_url and signing_certificate")
			case n > maxEntityID:
				return v, errs.Errorf(errs.Invalid, "saml.entity_id: must be at most %d characters", maxEntityID)
			}
			if v.ssoURL, err = checkURL("saml.sso_url", m.SSOURL, s.allowHTTP); err != nil {
				return v, err
			}
			if v.signingCertificate, err = parseCertificate(m.SigningCertificate); err != nil {
				return v, err
			}
		default:
			return v, errs.Errorf(errs.Invalid, "saml: metadata_url, or entity_id, sso_url and signing_certificate, required")
		}
	case "":
		return v, errs.Errorf(errs.Invalid, "protocol: required (oidc or saml)")
	default:
		return v, errs.Errorf(errs.Invalid, "protocol: must be oidc or saml")
	}
	if v.domains, err = normalizeDomains(in.Domains); err != nil {
		return v, err
	}
	return v, nil
}

// lockTenant reads the tenant, locking its row on PostgreSQL: changes of
// its identity provider and the outcomes of their provisioning are
// serialised per tenant (jobs.go relies on it). SQLite serialises writers
// anyway.
func lockTenant(ctx context.Context, tx *ent.Tx, id uuid.UUID) (*ent.Tenant, error) {
	t, err := tx.Tenant.Query().Where(enttenant.ID(id), predicate.Tenant(func(s *entsql.Selector) {
		if s.Dialect() == dialect.Postgres {
			s.ForUpdate()
		}
	})).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "tenant not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

func tenantTarget(t *ent.Tenant) audit.Target {
	return audit.Target{ID: t.ID.String(), Name: t.Slug, Type: "tenant"}
}

// Set creates or replaces the tenant's identity provider and queues its
// provisioning in Keycloak, then tries it once within the request's time.
// A domain another tenant routes is a Conflict, decided by the unique
// index of tenant_idp_domains.
func (s *Service) Set(ctx context.Context, in SetInput) (*Config, error) {
	tid, err := ids.ParseTenant("tenant_id", in.TenantID)
	if err != nil {
		return nil, err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return nil, err
	}
	v, err := s.validate(in)
	if err != nil {
		return nil, err
	}
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := lockTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		now := s.clock()
		cur, err := tx.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(tid)).Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return fmt.Errorf("read idp config: %w", err)
		}
		var sealed []byte
		secretChanged := false
		switch {
		case v.protocol != tenantidpconfig.ProtocolOidc:
		case v.secret != "":
			if sealed, err = s.box.Seal([]byte(v.secret), secretAAD(tid)); err != nil {
				return fmt.Errorf("seal client secret: %w", err)
			}
			secretChanged = true
		case cur != nil && cur.Protocol == tenantidpconfig.ProtocolOidc && cur.ClientSecretSealed != nil && len(*cur.ClientSecretSealed) > 0:
			sealed = *cur.ClientSecretSealed // kept
		default:
			return errs.Errorf(errs.Invalid, "oidc.client_secret: required (no secret is stored)")
		}
		issuerURL := v.issuer
		if v.protocol == tenantidpconfig.ProtocolSaml {
			issuerURL = v.metadataURL
		}
		var configID uuid.UUID
		if cur == nil {
			configID = uuid.New()
			c := tx.TenantIdpConfig.Create().SetID(configID).SetTenantID(tid).
				SetProtocol(v.protocol).SetIssuerURL(issuerURL).SetClientID(v.clientID).SetEnabled(true).
				SetSamlEntityID(v.entityID).SetSamlSSOURL(v.ssoURL).SetSamlSigningCertificate(v.signingCertificate).
				SetIdpState(StatePending).SetGeneration(1).SetCreatedAt(now).SetUpdatedAt(now)
			if sealed != nil {
				c.SetClientSecretSealed(sealed)
			}
			if err := c.Exec(ctx); err != nil {
				return fmt.Errorf("insert idp config: %w", err)
			}
		} else {
			configID = cur.ID
			u := tx.TenantIdpConfig.UpdateOneID(cur.ID).
				SetProtocol(v.protocol).SetIssuerURL(issuerURL).SetClientID(v.clientID).SetEnabled(true).
				SetSamlEntityID(v.entityID).SetSamlSSOURL(v.ssoURL).SetSamlSigningCertificate(v.signingCertificate).
				SetIdpState(StatePending).AddGeneration(1).SetUpdatedAt(now)
			if sealed != nil {
				u.SetClientSecretSealed(sealed)
			} else {
				u.ClearClientSecretSealed()
			}
			if err := u.Exec(ctx); err != nil {
				return fmt.Errorf("update idp config: %w", err)
			}
			if _, err := tx.TenantIdpDomain.Delete().Where(tenantidpdomain.ConfigID(cur.ID)).Exec(ctx); err != nil {
				return fmt.Errorf("delete idp domains: %w", err)
			}
		}
		for _, d := range v.domains {
			err := tx.TenantIdpDomain.Create().SetID(uuid.New()).SetConfigID(configID).SetDomain(d).Exec(ctx)
			if ent.IsConstraintError(err) {
				return errs.Errorf(errs.Conflict, "domains: %s is already routed to another tenant's identity provider", d)
			}
			if err != nil {
				return fmt.Errorf("insert idp domain: %w", err)
			}
		}
		if err := armJob(ctx, tx, tid, kindIdP, nil, now); err != nil {
			return err
		}
		fields := map[string]string{
			"protocol": string(v.protocol), "domains": strings.Join(v.domains, ","), "alias": Alias(t.Slug),
			"client_secret_changed": fmt.Sprint(secretChanged),
		}
		switch {
		case v.issuer != "":
			fields["issuer"], fields["client_id"] = v.issuer, v.clientID
		case v.metadataURL != "":
			fields["metadata_url"] = v.metadataURL
		default:
			fields["entity_id"], fields["sso_url"] = v.entityID, v.ssoURL
		}
		crud, verb := "c", "configured"
		if cur != nil {
			crud, verb = "u", "reconfigured"
		}
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "idp.configured", CRUD: crud, TenantID: tid, TenantName: t.Name, Target: tenantTarget(t),
			Description: fmt.Sprintf("single sign-on of %s %s: %s for %s", t.Slug, verb, v.protocol, strings.Join(v.domains, ", ")),
			Fields:      fields,
		})
	})
	if err != nil {
		return nil, err
	}
	// Committed: the Keycloak attempt is best-effort within the request's
	// time; the worker retries it.
	s.runNow(ctx, tid, kindIdP)
	return s.readBack(ctx, tid)
}

// readBackTimeout bounds readBack.
const readBackTimeout = 15 * time.Second

// readBack reads the configuration after a committed change, outliving
// the request.
func (s *Service) readBack(ctx context.Context, tid uuid.UUID) (*Config, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	return s.get(rctx, tid)
}

// Get answers the tenant's identity provider; NotFound when there is none.
func (s *Service) Get(ctx context.Context, tenantID string) (*Config, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return nil, err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return nil, err
	}
	return s.get(ctx, tid)
}

func (s *Service) get(ctx context.Context, tid uuid.UUID) (*Config, error) {
	c, err := s.client.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(tid)).
		WithTenant().WithDomains().Only(ctx)
	if ent.IsNotFound(err) {
		if _, terr := s.client.Tenant.Get(ctx, tid); ent.IsNotFound(terr) {
			return nil, errs.Errorf(errs.NotFound, "tenant not found")
		}
		return nil, errs.Errorf(errs.NotFound, "the tenant has no identity provider")
	}
	if err != nil {
		return nil, fmt.Errorf("read idp config: %w", err)
	}
	return view(c), nil
}

func view(c *ent.TenantIdpConfig) *Config {
	out := &Config{
		TenantID: c.TenantID, Protocol: string(c.Protocol),
		EntityID: c.SamlEntityID, SSOURL: c.SamlSSOURL, SigningCertificate: c.SamlSigningCertificate,
		HasClientSecret: c.ClientSecretSealed != nil && len(*c.ClientSecretSealed) > 0,
		State:           c.IdpState, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Domains: make([]string, 0, len(c.Edges.Domains)),
	}
	if c.Protocol == tenantidpconfig.ProtocolOidc {
		out.Issuer, out.ClientID = c.IssuerURL, c.ClientID
	} else {
		out.MetadataURL = c.IssuerURL
	}
	for _, d := range c.Edges.Domains {
		out.Domains = append(out.Domains, d.Domain)
	}
	slices.Sort(out.Domains)
	if c.Edges.Tenant != nil {
		out.Alias = Alias(c.Edges.Tenant.Slug)
	}
	return out
}

// Delete removes the tenant's identity provider (its domains are free at
// once) and queues its removal from Keycloak (unlink, delete; what is gone
// already counts as removed).
func (s *Service) Delete(ctx context.Context, tenantID string) error {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return err
	}
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := lockTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		cur, err := tx.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(tid)).WithDomains().Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "the tenant has no identity provider")
		}
		if err != nil {
			return fmt.Errorf("read idp config: %w", err)
		}
		if _, err := tx.TenantIdpDomain.Delete().Where(tenantidpdomain.ConfigID(cur.ID)).Exec(ctx); err != nil {
			return fmt.Errorf("delete idp domains: %w", err)
		}
		if err := tx.TenantIdpConfig.DeleteOneID(cur.ID).Exec(ctx); err != nil {
			return fmt.Errorf("delete idp config: %w", err)
		}
		now := s.clock()
		if err := armJob(ctx, tx, tid, kindIdP, nil, now); err != nil {
			return err
		}
		domains := make([]string, 0, len(cur.Edges.Domains))
		for _, d := range cur.Edges.Domains {
			domains = append(domains, d.Domain)
		}
		slices.Sort(domains)
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "idp.deleted", CRUD: "d", TenantID: tid, TenantName: t.Name, Target: tenantTarget(t),
			Description: fmt.Sprintf("single sign-on of %s removed", t.Slug),
			Fields:      map[string]string{"protocol": string(cur.Protocol), "domains": strings.Join(domains, ","), "alias": Alias(t.Slug)},
		})
	})
	if err != nil {
		return err
	}
	s.runNow(ctx, tid, kindIdP)
	return nil
}

// Purger deletes a purged tenant's identity provider from Keycloak: the
// purge's step before the organisation goes (tenant.Deps.IdentityProviders).
// A tenant without one costs a 404, which is success.
type Purger struct{ IdentityProviders keycloak.IdentityProviders }

// PurgeIdentityProvider implements tenant.IdentityProviderPurger. The
// organisation is deleted right after, so the link needs no unlinking.
func (p Purger) PurgeIdentityProvider(ctx context.Context, _ uuid.UUID, slug string) error {
	return p.IdentityProviders.RemoveIdentityProvider(ctx, "", Alias(slug))
}
