// Package entitlement manages what each tenant may use: the catalog's
// products as requested, trial, active or expired entitlements, self-serve
// trials and their expiry, grants and revokes, and the claims Keycloak puts
// into tokens. Every change writes its audit event in its own transaction.
//
// Concurrency: each change inserts its target row with ON CONFLICT DO
// NOTHING (the unique index on (tenant_id, product) decides who creates the
// row), then locks the row (SELECT … FOR UPDATE on PostgreSQL; SQLite
// serialises writers) and decides on what it reads under that lock. The
// sweeper's status change is a conditional UPDATE … WHERE status = 'trial'
// that only one replica can win.
package entitlement

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/platform/tenant-registry/internal/deps"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/store"
)

// Entitlement statuses.
const (
	StatusRequested = string(tenantproduct.StatusRequested)
	StatusTrial     = string(tenantproduct.StatusTrial)
	StatusActive    = string(tenantproduct.StatusActive)
	StatusExpired   = string(tenantproduct.StatusExpired)
)

// maxNote bounds a request's note (the column's limit).
const maxNote = 2000

// Service manages entitlements.
type Service struct {
	client  *ent.Client
	audit   *audit.Recorder
	catalog *catalog.Catalog
	clock   clock.Clock
	log     *slog.Logger
}

// Deps are what a Service needs.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Catalog  *catalog.Catalog
	Clock    clock.Clock
	// Logger reports the trial sweeper's work; nil discards it.
	Logger *slog.Logger
}

// NewService returns a Service. Client, Recorder, Catalog and Clock are
// required.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("entitlement",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("an audit recorder", d.Recorder != nil),
		deps.Of("a catalog", d.Catalog != nil),
		deps.Of("a clock", d.Clock != nil),
	); err != nil {
		return nil, err
	}
	d.Logger = deps.Logger(d.Logger)
	return &Service{client: d.Client, audit: d.Recorder, catalog: d.Catalog, clock: d.Clock, log: d.Logger}, nil
}

// Catalog returns the product catalog the service checks products against.
func (s *Service) Catalog() *catalog.Catalog { return s.catalog }

// Entitlement is a tenant's entitlement to a product as every reader sees
// it (the one result type of this package, made from the row by view).
type Entitlement struct {
	TenantID uuid.UUID
	Product  string
	// Status is the effective status (see Effective), not always the row's.
	Status tenantproduct.Status
	Note   string
	// TrialEndsAt is set for trials and expired trials only.
	TrialEndsAt          *time.Time
	CreatedAt, UpdatedAt time.Time
}

// The entitlement rule, for every reader (tenant reads, claims, verify and
// this package): a tenant may use its active entitlements and its trials
// that have not ended, and a trial is over at the very moment it ends,
// whether or not the sweeper has recorded it yet.

// Current matches the entitlements a tenant may use at now.
func Current(now time.Time) predicate.TenantProduct {
	return tenantproduct.Or(
		tenantproduct.StatusEQ(tenantproduct.StatusActive),
		tenantproduct.And(tenantproduct.StatusEQ(tenantproduct.StatusTrial), tenantproduct.TrialEndsAtGT(now)),
	)
}

// Effective returns the status every reader must see at now: a trial whose
// end has come is expired.
func Effective(p *ent.TenantProduct, now time.Time) string {
	if p.Status == tenantproduct.StatusTrial && p.TrialEndsAt != nil && !p.TrialEndsAt.After(now) {
		return StatusExpired
	}
	return string(p.Status)
}

// view is p as readers see it at now.
func view(p *ent.TenantProduct, now time.Time) *Entitlement {
	e := &Entitlement{
		TenantID: p.TenantID, Product: p.Product, Status: tenantproduct.Status(Effective(p, now)), Note: p.Note,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if e.Status == tenantproduct.StatusTrial || e.Status == tenantproduct.StatusExpired {
		e.TrialEndsAt = p.TrialEndsAt
	}
	return e
}

func (s *Service) product(key string) (catalog.Product, error) {
	if key == "" {
		return catalog.Product{}, errs.Errorf(errs.Invalid, "product: required")
	}
	p, ok := s.catalog.Lookup(key)
	if !ok {
		return catalog.Product{}, errs.Errorf(errs.Invalid, "product: unknown product %q (the catalog has %s)", key, strings.Join(s.catalog.Keys(), ", "))
	}
	return p, nil
}

// List returns the tenant's entitlements, by product, with their effective
// status.
func (s *Service) List(ctx context.Context, tenantID string) ([]*Entitlement, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return nil, err
	}
	t, err := s.client.Tenant.Query().Where(enttenant.ID(tid)).
		WithProducts(func(q *ent.TenantProductQuery) { q.Order(ent.Asc(tenantproduct.FieldProduct)) }).
		Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "tenant not found")
	}
	if err != nil {
		return nil, fmt.Errorf("list entitlements: %w", err)
	}
	now := s.clock()
	out := make([]*Entitlement, len(t.Edges.Products))
	for i, p := range t.Edges.Products {
		out[i] = view(p, now)
	}
	return out, nil
}

// lockForUpdate locks the selected rows on PostgreSQL. SQLite has no row
// locks and needs none: it serialises writing transactions (and the store
// uses a single connection).
func lockForUpdate(s *entsql.Selector) {
	if s.Dialect() == dialect.Postgres {
		s.ForUpdate()
	}
}

// lockForShare keeps the tenant's status from changing (cancel) until the
// transaction ends, on PostgreSQL.
func lockForShare(s *entsql.Selector) {
	if s.Dialect() == dialect.Postgres {
		s.ForShare()
	}
}

// change is one entitlement change in a transaction: the tenant (share
// locked), the product row (locked; created as insert when there was none),
// and whether this call created it.
type change struct {
	tx      *ent.Tx
	tenant  *ent.Tenant
	row     *ent.TenantProduct
	created bool
	now     time.Time
}

// crud is the event's crud letter for the change: c when it created the
// row, u when it changed one.
func (c *change) crud() string {
	if c.created {
		return "c"
	}
	return "u"
}

// mutate runs fn on the tenant's row for product in a transaction. When
// insert is non-nil and the tenant has no row for product, insert's row is
// created first (ON CONFLICT DO NOTHING: concurrent callers create one row
// between them). Without insert, a missing row is NotFound.
func (s *Service) mutate(ctx context.Context, tid uuid.UUID, product string, insert func(c *ent.TenantProductCreate, now time.Time), fn func(c *change) error) error {
	return store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := tx.Tenant.Query().Where(enttenant.ID(tid), predicate.Tenant(lockForShare)).Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "tenant not found")
		}
		if err != nil {
			return fmt.Errorf("read tenant: %w", err)
		}
		now := s.clock()
		newID := uuid.New()
		if insert != nil {
			create := tx.TenantProduct.Create().
				SetID(newID).SetTenantID(tid).SetProduct(product).
				SetCreatedAt(now).SetUpdatedAt(now)
			insert(create, now)
			if err := create.OnConflictColumns(tenantproduct.FieldTenantID, tenantproduct.FieldProduct).DoNothing().Exec(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
				// ErrNoRows: the row exists; nothing was inserted.
				return fmt.Errorf("insert entitlement: %w", err)
			}
		}
		row, err := tx.TenantProduct.Query().
			Where(tenantproduct.TenantID(tid), tenantproduct.Product(product), predicate.TenantProduct(lockForUpdate)).
			Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "product: the tenant has no entitlement to %s", product)
		}
		if err != nil {
			return fmt.Errorf("read entitlement: %w", err)
		}
		return fn(&change{tx: tx, tenant: t, row: row, created: row.ID == newID, now: now})
	})
}

func (s *Service) record(ctx context.Context, c *change, action, crud, description string, fields map[string]string) error {
	err := s.audit.Record(ctx, c.tx, audit.Entry{
		Action: action, CRUD: crud,
		TenantID: c.tenant.ID, TenantName: c.tenant.Name,
		Target:      audit.Target{ID: c.row.ID.String(), Name: c.row.Product, Type: "entitlement"},
		Description: description,
		Fields:      fields,
	})
	return err
}

func refuseFrozen(t *ent.Tenant, what string) error {
	if t.Status == enttenant.StatusFrozen {
		return errs.Errorf(errs.Precondition, "cannot %s: the tenant is frozen", what)
	}
	return nil
}

// Request records that the tenant wants product, for sales follow-up. It
// creates one requested entitlement, or keeps the one there is (asking
// twice is no duplicate; a new non-empty note replaces the old one). An
// expired entitlement becomes requested again. An active product or a
// running trial is a Precondition error. The catalog.product_requested
// event is written only when something changed (a row created, a status or
// note changed), so a repeated identical request leaves no trace.
func (s *Service) Request(ctx context.Context, tenantID, product, note string) (*Entitlement, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return nil, err
	}
	if _, err := s.product(product); err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > maxNote {
		return nil, errs.Errorf(errs.Invalid, "note: must be at most %d characters", maxNote)
	}
	var out *ent.TenantProduct
	err = s.mutate(ctx, tid, product, func(c *ent.TenantProductCreate, _ time.Time) {
		c.SetStatus(tenantproduct.StatusRequested)
		if note != "" {
			c.SetNote(note)
		}
	}, func(c *change) error {
		// Checked under the tenant's lock, before anything is written (the
		// insert above rolls back with the transaction).
		if err := refuseFrozen(c.tenant, "request a product"); err != nil {
			return err
		}
		row := c.row
		from := Effective(row, c.now)
		if c.created {
			out = row
			return s.record(ctx, c, "catalog.product_requested", "c",
				fmt.Sprintf("tenant %s requested %s", c.tenant.Slug, product),
				map[string]string{"product": product, "note": note})
		}
		switch from {
		case StatusActive:
			return errs.Errorf(errs.Precondition, "product: %s is already active for this tenant", product)
		case StatusTrial:
			return errs.Errorf(errs.Precondition, "product: %s is on a trial until %s; it is requested from sales once the trial ends, or granted", product, row.TrialEndsAt.UTC().Format(time.RFC3339))
		case StatusRequested:
			if note == "" || row.Note == note {
				out = row // nothing to change
				return nil
			}
		}
		upd := c.tx.TenantProduct.UpdateOne(row).SetStatus(tenantproduct.StatusRequested).SetUpdatedAt(c.now)
		if note != "" {
			upd.SetNote(note)
		}
		if out, err = upd.Save(ctx); err != nil {
			return fmt.Errorf("update entitlement: %w", err)
		}
		return s.record(ctx, c, "catalog.product_requested", "u",
			fmt.Sprintf("tenant %s requested %s (was %s)", c.tenant.Slug, product, from),
			map[string]string{"product": product, "note": note, "from": from})
	})
	if err != nil {
		return nil, err
	}
	return view(out, s.clock()), nil
}

// StartTrial starts a self-serve trial of product: only for a product whose
// catalog entry offers one, once per product per tenant ever (trial_started_at
// is never cleared), not when the product is active, not for a frozen
// tenant. A requested product may start its trial. The trial ends exactly
// trial_days × 24h after now.
func (s *Service) StartTrial(ctx context.Context, tenantID, product string) (*Entitlement, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return nil, err
	}
	p, err := s.product(product)
	if err != nil {
		return nil, err
	}
	if !p.TrialAvailable {
		return nil, errs.Errorf(errs.Precondition, "product: %s has no self-serve trial; request it instead", product)
	}
	length := time.Duration(p.TrialDays) * 24 * time.Hour
	var out *ent.TenantProduct
	err = s.mutate(ctx, tid, product, func(c *ent.TenantProductCreate, now time.Time) {
		c.SetStatus(tenantproduct.StatusTrial).SetTrialStartedAt(now).SetTrialEndsAt(now.Add(length))
	}, func(c *change) error {
		if err := refuseFrozen(c.tenant, "start a trial"); err != nil {
			return err
		}
		row := c.row
		ends := c.now.Add(length)
		if !c.created {
			switch {
			case row.TrialStartedAt != nil:
				return errs.Errorf(errs.Precondition, "product: trial already used for %s (started %s); one trial per product, ever: request it instead", product, row.TrialStartedAt.UTC().Format(time.RFC3339))
			case row.Status == tenantproduct.StatusActive:
				return errs.Errorf(errs.Precondition, "product: %s is already active for this tenant", product)
			}
			if row, err = c.tx.TenantProduct.UpdateOne(row).
				SetStatus(tenantproduct.StatusTrial).SetTrialStartedAt(c.now).SetTrialEndsAt(ends).SetUpdatedAt(c.now).
				Save(ctx); err != nil {
				return fmt.Errorf("update entitlement: %w", err)
			}
		}
		out = row
		return s.record(ctx, c, "catalog.trial_started", c.crud(),
			fmt.Sprintf("tenant %s started a %d-day trial of %s", c.tenant.Slug, p.TrialDays, product),
			map[string]string{"product": product, "trial_days": fmt.Sprint(p.TrialDays), "trial_ends_at": ends.UTC().Format(time.RFC3339Nano)})
	})
	if err != nil {
		return nil, err
	}
	return view(out, s.clock()), nil
}

// Grant makes product active for the tenant (sales closed the deal), from
// any status or none; granting an active product is an idempotent success
// without an event. The trial history (trial_started_at) is kept.
func (s *Service) Grant(ctx context.Context, tenantID, product string) (*Entitlement, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return nil, err
	}
	if _, err := s.product(product); err != nil {
		return nil, err
	}
	var out *ent.TenantProduct
	err = s.mutate(ctx, tid, product, func(c *ent.TenantProductCreate, _ time.Time) {
		c.SetStatus(tenantproduct.StatusActive)
	}, func(c *change) error {
		row := c.row
		from := "none"
		if !c.created {
			if row.Status == tenantproduct.StatusActive {
				out = row
				return nil
			}
			from = Effective(row, c.now)
			if row, err = c.tx.TenantProduct.UpdateOne(row).
				SetStatus(tenantproduct.StatusActive).SetUpdatedAt(c.now).
				Save(ctx); err != nil {
				return fmt.Errorf("update entitlement: %w", err)
			}
		}
		out = row
		return s.record(ctx, c, "entitlement.granted", c.crud(),
			fmt.Sprintf("%s granted to tenant %s (was %s)", product, c.tenant.Slug, from),
			map[string]string{"product": product, "from": from})
	})
	if err != nil {
		return nil, err
	}
	return view(out, s.clock()), nil
}

// Revoke takes product away from the tenant. An entitlement whose trial was
// ever used is kept as expired (so the one trial per product stays used: a
// revoke never re-opens it); any other (requested, or active without a
// trial) is deleted. Revoking an entitlement already recorded as expired is
// an idempotent success without an event; a product the tenant has no row
// for is NotFound.
func (s *Service) Revoke(ctx context.Context, tenantID, product string) error {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return err
	}
	if product == "" {
		return errs.Errorf(errs.Invalid, "product: required")
	}
	// Products that left the catalog can still be revoked.
	return s.mutate(ctx, tid, product, nil, func(c *change) error {
		row := c.row
		from := Effective(row, c.now)
		fields := map[string]string{"product": product, "from": from}
		if row.TrialStartedAt != nil {
			if row.Status == tenantproduct.StatusExpired {
				return nil
			}
			if err := c.tx.TenantProduct.UpdateOne(row).
				SetStatus(tenantproduct.StatusExpired).SetUpdatedAt(c.now).
				Exec(ctx); err != nil {
				return fmt.Errorf("update entitlement: %w", err)
			}
			fields["result"] = "expired"
		} else {
			if err := c.tx.TenantProduct.DeleteOne(row).Exec(ctx); err != nil {
				return fmt.Errorf("delete entitlement: %w", err)
			}
			fields["result"] = "deleted"
		}
		return s.record(ctx, c, "entitlement.revoked", "d",
			fmt.Sprintf("%s revoked from tenant %s (was %s)", product, c.tenant.Slug, from), fields)
	})
}

// View is p as readers see it at now (the webhook messages' resource).
func View(p *ent.TenantProduct, now time.Time) *Entitlement { return view(p, now) }
