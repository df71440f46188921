package apikey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproject"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/deps"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Limits of the inputs.
const (
	MaxNameLen   = 200
	MaxScopes    = 32
	MaxOverlap   = 30 * 24 * time.Hour
	listKind     = "api_keys"
	targetType   = "api_key"
	defaultTTL   = 2 * time.Minute
	defaultStale = 3 * time.Second
)

var scopeRE = regexp.MustCompile(`^[a-z][a-z0-9:._-]{0,63}$`)

// Deps are what a Service needs; Client, Recorder, Clock, Pager and Secret
// are required.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Clock    clock.Clock
	Pager    *cursor.Pager
	// Secret keys the stored HMAC (API_KEY_SECRET); at least MinSecretLen bytes.
	Secret []byte
	// Postgres enables the verdict cache, which is used only while Listen
	// holds a LISTEN connection that delivers, and registers an Ent hook on
	// Client that drops the cached verdicts a local write changes when it
	// commits (see localInvalidation). On SQLite (one process, an in-process
	// database) there is no cache: every verify reads the database.
	Postgres bool
	Logger   *slog.Logger
	// CacheTTL bounds a cached verdict's life as a last resort (default 2 min).
	CacheTTL time.Duration
	// StaleAfter: the cache is bypassed when the listener has not proven its
	// connection alive (a notification or a heartbeat round trip) for this
	// long (default 3s; heartbeats run every StaleAfter/3).
	StaleAfter time.Duration
	// UsageEvery is how often last_used_at is written per key and replica
	// (default and minimum one minute, except in tests).
	UsageEvery time.Duration
}

// Service manages API keys.
type Service struct {
	client   *ent.Client
	audit    *audit.Recorder
	clock    clock.Clock
	pager    *cursor.Pager
	hash     hasher
	log      *slog.Logger
	cache    *cache
	listener *listenerState
	usage    *usage
	postgres bool
	// flights coalesces concurrent misses of one key (lookupShared).
	flights singleflight.Group
	// followers are told what the cache drops (see Follow).
	followers []Follower
}

// NewService returns a Service.
func NewService(o Deps) (*Service, error) {
	if err := deps.Require("apikey",
		deps.Of("an Ent client", o.Client != nil),
		deps.Of("an audit recorder", o.Recorder != nil),
		deps.Of("a clock", o.Clock != nil),
		deps.Of("a pager", o.Pager != nil),
	); err != nil {
		return nil, err
	}
	if len(o.Secret) < MinSecretLen {
		return nil, fmt.Errorf("API_KEY_SECRET: must be at least %d bytes", MinSecretLen)
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = defaultTTL
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = defaultStale
	}
	if o.UsageEvery <= 0 {
		o.UsageEvery = time.Minute
	}
	o.Logger = deps.Logger(o.Logger)
	s := &Service{
		client: o.Client, audit: o.Recorder, clock: o.Clock, pager: o.Pager,
		hash:     newHasher(o.Secret),
		log:      o.Logger,
		cache:    newCache(o.CacheTTL),
		listener: newListenerState(o.StaleAfter),
		usage:    newUsage(o.UsageEvery),
	}
	s.cache.enabled = o.Postgres
	s.postgres = o.Postgres
	if s.cache.enabled {
		// Every service writing through this client (tenants, entitlements,
		// keys) drops the verdicts it changes when it commits.
		o.Client.APIKey.Use(s.localInvalidation)
		o.Client.Tenant.Use(s.localInvalidation)
		o.Client.TenantProduct.Use(s.localInvalidation)
	}
	return s, nil
}

// Key is an API key as callers see it: never the secret, never the hash.
type Key struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	Name       string
	Prefix     string
	Scopes     []string
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	// ProjectID is the tenant's project the key belongs to (nil: none).
	ProjectID *uuid.UUID
}

func view(k *ent.APIKey) *Key {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return &Key{
		ID: k.ID, TenantID: k.TenantID, Name: k.Name, Prefix: k.Prefix, Scopes: scopes,
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt, ProjectID: k.ProjectID,
	}
}

// View is the answer form of a key row (never its hash), for readers
// outside this package such as the tenant export.
func View(k *ent.APIKey) *Key { return view(k) }

// CreateInput is what Create takes.
type CreateInput struct {
	TenantID  string
	Name      string
	Scopes    []string
	ExpiresAt *time.Time // optional
	// ProjectID, optional: one of the tenant's projects (else not found).
	ProjectID string
}

// Created is a new key and its plaintext, shown once.
type Created struct {
	Key       *Key
	Plaintext string
}

// Create issues a key for a tenant.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Created, error) {
	tid, err := ids.ParseTenant("tenant_id", in.TenantID)
	if err != nil {
		return nil, err
	}
	name, err := text.DisplayName("name", in.Name, MaxNameLen)
	if err != nil {
		return nil, err
	}
	scopes, err := validateScopes(in.Scopes)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, errs.Errorf(errs.Invalid, "expires_at: must be in the future")
	}
	var project *uuid.UUID
	if in.ProjectID != "" {
		pid, err := ids.Parse("project_id", "a project id", in.ProjectID)
		if err != nil {
			return nil, err
		}
		project = &pid
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return nil, err
	}
	var out *Created
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := tx.Tenant.Get(ctx, tid)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "tenant not found")
		}
		if err != nil {
			return fmt.Errorf("read tenant: %w", err)
		}
		if t.Status == enttenant.StatusFrozen {
			return errs.Errorf(errs.Precondition, "cannot create an API key for a tenant whose status is frozen")
		}
		if project != nil {
			// Another tenant's project is as unknown as none.
			ok, err := tx.TenantProject.Query().Where(tenantproject.ID(*project), tenantproject.TenantID(tid)).Exist(ctx)
			if err != nil {
				return fmt.Errorf("read project: %w", err)
			}
			if !ok {
				return errs.Errorf(errs.NotFound, "project_id: project not found")
			}
		}
		k, plain, err := s.insert(ctx, tx, tid, project, name, scopes, in.ExpiresAt, now)
		if err != nil {
			return err
		}
		fields := map[string]string{"prefix": k.Prefix, "scopes": strings.Join(scopes, " ")}
		if project != nil {
			fields["project_id"] = project.String()
		}
		if k.ExpiresAt != nil {
			fields["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339)
		}
		if err := s.audit.Record(ctx, tx, audit.Entry{
			Action: "api_key.created", CRUD: "c",
			TenantID: tid, TenantName: t.Name,
			Target:      keyTarget(k),
			Description: fmt.Sprintf("API key %q (%s…) created for tenant %s", k.Name, k.Prefix, t.Slug),
			Fields:      fields,
		}); err != nil {
			return err
		}
		out = &Created{Key: view(k), Plaintext: plain}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.forgetUnknown(s.hash.sum(out.Plaintext))
	return out, nil
}

// insert writes a new key row and returns it with its plaintext.
func (s *Service) insert(ctx context.Context, tx *ent.Tx, tid uuid.UUID, project *uuid.UUID, name string, scopes []string, expiresAt *time.Time, now time.Time) (*ent.APIKey, string, error) {
	caller, err := principal.Require(ctx)
	if err != nil {
		return nil, "", err
	}
	for attempt := 0; ; attempt++ {
		plain, err := newKey()
		if err != nil {
			return nil, "", err
		}
		h := s.hash.sum(plain)
		k, err := tx.APIKey.Create().
			SetID(uuid.New()).
			SetTenantID(tid).
			SetName(name).
			SetPrefix(displayPrefix(plain)).
			SetHash(h[:]).
			SetScopes(scopes).
			SetCreatedBy(caller.Subject).
			SetNillableExpiresAt(expiresAt).
			SetNillableProjectID(project).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			Save(ctx)
		if ent.IsConstraintError(err) && attempt < 2 {
			// A 256-bit collision does not happen; a retry costs nothing.
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("insert api key: %w", err)
		}
		return k, plain, nil
	}
}

// ListInput pages through a tenant's keys.
type ListInput struct {
	TenantID string
	PageSize int32
	Cursor   string
}

// List pages through a tenant's keys newest first, keyset on (created_at,
// id), revoked and expired ones included. It never returns secrets or
// hashes.
func (s *Service) List(ctx context.Context, in ListInput) (keys []*Key, next string, err error) {
	tid, err := ids.ParseTenant("tenant_id", in.TenantID)
	if err != nil {
		return nil, "", err
	}
	page := cursor.Request{Kind: listKind, Scope: []string{tid.String()}, Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return nil, "", err
	}
	q := s.client.APIKey.Query().Where(entapikey.TenantID(tid))
	if after != nil {
		q = q.Where(cursor.Before(entapikey.FieldCreatedAt, entapikey.FieldID, *after))
	}
	rows, err := q.
		Order(ent.Desc(entapikey.FieldCreatedAt), ent.Desc(entapikey.FieldID)).
		Limit(size + 1).
		All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	if len(rows) == 0 && in.Cursor == "" {
		// No keys at all: an unknown tenant is not found, not an empty list.
		if exists, err := s.client.Tenant.Query().Where(enttenant.ID(tid)).Exist(ctx); err != nil {
			return nil, "", fmt.Errorf("read tenant: %w", err)
		} else if !exists {
			return nil, "", errs.Errorf(errs.NotFound, "tenant not found")
		}
	}
	keys, next = cursor.Next(s.pager, page, rows, size, func(k *ent.APIKey) cursor.Position {
		return cursor.Position{Time: k.CreatedAt, ID: k.ID}
	}, view)
	return keys, next, nil
}

// Revoke revokes a key. It is idempotent: revoking a revoked key returns it
// unchanged and records no second event. When it returns, the revoke is
// committed and this replica's cache no longer holds the key; other
// replicas drop it when their listener receives the commit's notification.
func (s *Service) Revoke(ctx context.Context, id string) (*Key, error) {
	kid, err := ids.Parse("id", "an API key id", id)
	if err != nil {
		return nil, err
	}
	var out *ent.APIKey
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		k, t, err := s.load(ctx, tx, kid)
		if err != nil {
			return err
		}
		if k.RevokedAt != nil {
			out = k
			return nil
		}
		now := s.clock()
		// Only the first of concurrent revokes updates the row and records.
		n, err := tx.APIKey.Update().
			Where(entapikey.ID(kid), entapikey.RevokedAtIsNil()).
			SetRevokedAt(now).SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		if n == 1 {
			if err := s.audit.Record(ctx, tx, audit.Entry{
				Action: "api_key.revoked", CRUD: "u",
				TenantID: t.ID, TenantName: t.Name,
				Target:      keyTarget(k),
				Description: fmt.Sprintf("API key %q (%s…) revoked", k.Name, k.Prefix),
				Fields:      map[string]string{"prefix": k.Prefix},
			}); err != nil {
				return err
			}
		}
		out, err = tx.APIKey.Get(ctx, kid)
		return err
	})
	s.invalidateKey(kid) // also after a failure: the cache may only shrink
	if err != nil {
		return nil, err
	}
	return view(out), nil
}

// Rotated is the outcome of Rotate.
type Rotated struct {
	New       *Key
	Plaintext string
	Previous  *Key
}

// Rotate issues a new key with the old one's tenant, name and scopes, and
// lets the old key live for overlap (0 revokes it now; an earlier expiry of
// the old key is kept). The new key has the old key's lifetime: no expiry
// if the old key had none, else now plus (old expiry − old creation).
func (s *Service) Rotate(ctx context.Context, id string, overlap time.Duration) (*Rotated, error) {
	kid, err := ids.Parse("id", "an API key id", id)
	if err != nil {
		return nil, err
	}
	if overlap < 0 || overlap > MaxOverlap {
		return nil, errs.Errorf(errs.Invalid, "overlap_seconds: must be from 0 to %d", int64(MaxOverlap/time.Second))
	}
	var out *Rotated
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		old, t, err := s.load(ctx, tx, kid)
		if err != nil {
			return err
		}
		now := s.clock()
		if old.RevokedAt != nil {
			return errs.Errorf(errs.Precondition, "cannot rotate a revoked API key")
		}
		if old.ExpiresAt != nil && !old.ExpiresAt.After(now) {
			return errs.Errorf(errs.Precondition, "cannot rotate an expired API key")
		}
		if t.Status == enttenant.StatusFrozen {
			return errs.Errorf(errs.Precondition, "cannot rotate an API key of a tenant whose status is frozen")
		}
		var newExpiry *time.Time
		if old.ExpiresAt != nil {
			e := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
			newExpiry = &e
		}
		nk, plain, err := s.insert(ctx, tx, t.ID, old.ProjectID, old.Name, old.Scopes, newExpiry, now)
		if err != nil {
			return err
		}
		upd := tx.APIKey.UpdateOneID(kid).Where(entapikey.RevokedAtIsNil()).SetUpdatedAt(now)
		if overlap == 0 {
			upd.SetRevokedAt(now)
		} else if end := now.Add(overlap); old.ExpiresAt == nil || end.Before(*old.ExpiresAt) {
			upd.SetExpiresAt(end)
		}
		prev, err := upd.Save(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.Precondition, "cannot rotate a revoked API key")
		}
		if err != nil {
			return fmt.Errorf("update rotated api key: %w", err)
		}
		fields := map[string]string{
			"previous_key_id": old.ID.String(), "previous_prefix": old.Prefix,
			"new_key_id": nk.ID.String(), "new_prefix": nk.Prefix,
			"overlap_seconds": strconv.FormatInt(int64(overlap/time.Second), 10),
		}
		if err := s.audit.Record(ctx, tx, audit.Entry{
			Action: "api_key.rotated", CRUD: "u",
			TenantID: t.ID, TenantName: t.Name,
			Target:      keyTarget(old),
			Description: fmt.Sprintf("API key %q (%s…) rotated to %s…", old.Name, old.Prefix, nk.Prefix),
			Fields:      fields,
		}); err != nil {
			return err
		}
		out = &Rotated{New: view(nk), Plaintext: plain, Previous: view(prev)}
		return nil
	})
	s.invalidateKey(kid)
	if err != nil {
		return nil, err
	}
	s.cache.forgetUnknown(s.hash.sum(out.Plaintext))
	return out, nil
}

// load reads a key and its tenant in tx; another tenant's key is not found.
func (s *Service) load(ctx context.Context, tx *ent.Tx, kid uuid.UUID) (*ent.APIKey, *ent.Tenant, error) {
	k, err := tx.APIKey.Query().Where(entapikey.ID(kid)).WithTenant().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil, errs.Errorf(errs.NotFound, "api key not found")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read api key: %w", err)
	}
	if err := principal.CheckTenant(ctx, k.TenantID.String()); err != nil {
		if errs.CodeOf(err) == errs.NotFound {
			return nil, nil, errs.Errorf(errs.NotFound, "api key not found")
		}
		return nil, nil, err
	}
	return k, k.Edges.Tenant, nil
}

func keyTarget(k *ent.APIKey) audit.Target {
	return audit.Target{ID: k.ID.String(), Name: k.Name, Type: targetType}
}

// validateScopes checks scopes and returns them sorted without duplicates.
func validateScopes(scopes []string) ([]string, error) {
	if len(scopes) > MaxScopes {
		return nil, errs.Errorf(errs.Invalid, "scopes: at most %d", MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if !scopeRE.MatchString(sc) {
			return nil, errs.Errorf(errs.Invalid, "scopes: %q is not a scope (want lower case like %q, at most 64 characters)", text.Truncate(sc, 64), "certifai:read")
		}
		out = append(out, sc)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

var errNoListener = errors.New("apikey: listener needs a database URL")
