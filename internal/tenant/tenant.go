// Package tenant manages tenants: creation, look-up, listing and the
// lifecycle trial → active → frozen, each change with its audit event in the
// same transaction.
package tenant

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/platform/tenant-registry/internal/deps"
	"log/slog"
	"slices"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Tenant is a tenant as the service answers it (the one result type of
// this package, made from the row by view or read by lookup).
type Tenant struct {
	ID                uuid.UUID
	Slug, Name        string
	Status            enttenant.Status
	Plan              enttenant.Plan
	KeycloakOrgID     *string
	ProvisioningState string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// DeletionScheduledAt is when the purge may run (nil: not scheduled).
	DeletionScheduledAt *time.Time
	// Products the tenant may use now (entitlement.Current), sorted.
	Products []string
	// InviteURL is set by Create when an admin was invited (never in prod).
	InviteURL string
}

// Service manages tenants.
type Service struct {
	client        *ent.Client
	audit         *audit.Recorder
	clock         clock.Clock
	provisioner   Provisioner
	orgs          keycloak.Organizations
	idps          IdentityProviderPurger
	deletionGrace time.Duration
	pager         *cursor.Pager
	hideInviteURL bool
	log           *slog.Logger
	cache         *cache
	provisioning  *outbox.Runner[keycloak.ProvisionResult]
	orgJobs       *outbox.Runner[struct{}]
}

// Deps are what a Service needs.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Clock    clock.Clock
	Pager    *cursor.Pager
	// Provisioner provisions tenants in Keycloak (keycloak.HTTPAdapter, or
	// keycloak.Mock in dev): required, never a silent default.
	Provisioner Provisioner
	// Organizations renames and deletes tenants' organisations in Keycloak
	// (the rename after UpdateTenant, the delete of the purge). Nil means
	// Provisioner, which must then implement keycloak.Organizations.
	Organizations keycloak.Organizations
	// IdentityProviders deletes a purged tenant's own identity provider
	// from Keycloak (single sign-on); nil: tenants have none to delete.
	IdentityProviders IdentityProviderPurger
	// DeletionGrace is how long after DeleteTenant the purge runs
	// (DELETION_GRACE, default 720h); zero purges at the
	// next sweep.
	DeletionGrace time.Duration
	// HideInviteURLs discards invite URLs from create responses (prod).
	HideInviteURLs bool
	// Logger reports the provisioning worker's work; nil discards it.
	Logger *slog.Logger
	// CacheFresh, when set, enables the read cache of Get, GetBySlug and
	// Claims (see cache.go) and says when it may be used: the API-key
	// verify cache's Listening, whose invalidations this cache follows
	// (apikey.Service.Follow). Nil (SQLite) reads the database every time.
	CacheFresh func() bool
}

// NewService returns a Service. Client, Recorder, Clock, Pager and
// Provisioner are required.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("tenant",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("an audit recorder", d.Recorder != nil),
		deps.Of("a clock", d.Clock != nil),
		deps.Of("a pager", d.Pager != nil),
		deps.Of("a Keycloak provisioner", d.Provisioner != nil),
	); err != nil {
		return nil, err
	}
	if d.Organizations == nil {
		d.Organizations, _ = d.Provisioner.(keycloak.Organizations)
	}
	if err := deps.Require("tenant",
		deps.Of("a Keycloak organisation adapter (Organizations, or a Provisioner that is one)", d.Organizations != nil),
		deps.Of("a deletion grace of 0 or more", d.DeletionGrace >= 0),
	); err != nil {
		return nil, err
	}
	d.Logger = deps.Logger(d.Logger)
	s := &Service{
		client: d.Client, audit: d.Recorder, clock: d.Clock, pager: d.Pager, provisioner: d.Provisioner,
		orgs: d.Organizations, idps: d.IdentityProviders, deletionGrace: d.DeletionGrace,
		hideInviteURL: d.HideInviteURLs, log: d.Logger, cache: newCache(d.CacheFresh),
	}
	s.provisioning, s.orgJobs = s.newProvisioning(), s.newOrgJobs()
	return s, nil
}

// Get returns the tenant with id.
func (s *Service) Get(ctx context.Context, id string) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	t, err := s.read(ctx, uid, "")
	if err != nil {
		return nil, err
	}
	if err := principal.CheckTenant(ctx, t.ID.String()); err != nil {
		return nil, err
	}
	return t, nil
}

// GetBySlug returns the tenant with slug.
func (s *Service) GetBySlug(ctx context.Context, slug string) (*Tenant, error) {
	if err := ValidateSlug(slug); err != nil {
		return nil, err
	}
	t, err := s.read(ctx, uuid.Nil, slug)
	if err != nil {
		return nil, err
	}
	if err := principal.CheckTenant(ctx, t.ID.String()); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Service) get(ctx context.Context, client *ent.Client, where predicate.Tenant) (*Tenant, error) {
	t, _, err := lookup(ctx, client, where, s.clock())
	return t, err
}

// read answers the tenant with id (or, when id is zero, slug) from the
// read cache when it may be used, else from the database, caching it.
func (s *Service) read(ctx context.Context, id uuid.UUID, slug string) (*Tenant, error) {
	where := enttenant.ID(id)
	if id == uuid.Nil {
		where = enttenant.Slug(slug)
	}
	now := s.clock()
	if !s.cache.inUse() {
		return s.get(ctx, s.client, where)
	}
	if t, ok := s.cache.get(id, slug, now); ok {
		return t, nil
	}
	epoch := s.cache.begin()
	t, until, err := lookup(ctx, s.client, where, now)
	if err != nil {
		return nil, err
	}
	if s.cache.inUse() {
		c := *t
		s.cache.put(&c, until, now, epoch)
	}
	return t, nil
}

// lookup reads one tenant and the products it may use at now in one SQL
// statement: the tenant by an indexed predicate (primary key or unique
// slug), LEFT JOIN its current products on the unique (tenant_id, product)
// index, a row per product. The portal's GetTenantBySlug and Keycloak's
// claims both come this way. until is the earliest end of a trial among
// those products (zero when none is a trial): the answer changes then.
func lookup(ctx context.Context, client *ent.Client, where predicate.Tenant, now time.Time) (_ *Tenant, until time.Time, _ error) {
	var rows []struct {
		ID                uuid.UUID      `json:"id"`
		Slug              string         `json:"slug"`
		Name              string         `json:"name"`
		Status            string         `json:"status"`
		Plan              string         `json:"plan"`
		KeycloakOrgID     sql.NullString `json:"keycloak_org_id"`
		ProvisioningState string         `json:"provisioning_state"`
		CreatedAt         time.Time      `json:"created_at"`
		UpdatedAt         time.Time      `json:"updated_at"`
		DeletionAt        sql.NullTime   `json:"deletion_scheduled_at"`
		Product           sql.NullString `json:"product"`
		ProductStatus     sql.NullString `json:"product_status"`
		TrialEndsAt       sql.NullTime   `json:"trial_ends_at"`
	}
	err := client.Tenant.Query().Where(where).Modify(func(sel *entsql.Selector) {
		p := entsql.Table(tenantproduct.Table).As("tp")
		// entitlement.Current, rendered against the joined table's alias.
		current := entsql.Dialect(sel.Dialect()).Select().From(p)
		entitlement.Current(now)(current)
		sel.LeftJoin(p).OnP(entsql.And(
			entsql.ColumnsEQ(sel.C(enttenant.FieldID), p.C(tenantproduct.FieldTenantID)),
			current.P(),
		))
		sel.Select(
			sel.C(enttenant.FieldID), sel.C(enttenant.FieldSlug), sel.C(enttenant.FieldName),
			sel.C(enttenant.FieldStatus), sel.C(enttenant.FieldPlan), sel.C(enttenant.FieldKeycloakOrgID),
			sel.C(enttenant.FieldProvisioningState), sel.C(enttenant.FieldCreatedAt), sel.C(enttenant.FieldUpdatedAt),
			sel.C(enttenant.FieldDeletionScheduledAt),
			entsql.As(p.C(tenantproduct.FieldProduct), "product"),
			entsql.As(p.C(tenantproduct.FieldStatus), "product_status"), p.C(tenantproduct.FieldTrialEndsAt),
		)
	}).Scan(ctx, &rows)
	if err != nil {
		return nil, until, fmt.Errorf("get tenant: %w", err)
	}
	if len(rows) == 0 {
		return nil, until, errs.Errorf(errs.NotFound, "tenant not found")
	}
	r := rows[0]
	out := &Tenant{
		ID: r.ID, Slug: r.Slug, Name: r.Name,
		Status: enttenant.Status(r.Status), Plan: enttenant.Plan(r.Plan),
		ProvisioningState: r.ProvisioningState,
		CreatedAt:         r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Products: make([]string, 0, len(rows)),
	}
	if r.KeycloakOrgID.Valid {
		out.KeycloakOrgID = &r.KeycloakOrgID.String
	}
	if r.DeletionAt.Valid {
		at := r.DeletionAt.Time
		out.DeletionScheduledAt = &at
	}
	for _, r := range rows {
		if !r.Product.Valid {
			continue
		}
		out.Products = append(out.Products, r.Product.String)
		trial := tenantproduct.Status(r.ProductStatus.String) == tenantproduct.StatusTrial && r.TrialEndsAt.Valid
		if trial && (until.IsZero() || r.TrialEndsAt.Time.Before(until)) {
			until = r.TrialEndsAt.Time
		}
	}
	slices.Sort(out.Products)
	return out, until, nil
}

func view(t *ent.Tenant) *Tenant {
	products := make([]string, 0, len(t.Edges.Products))
	for _, p := range t.Edges.Products {
		products = append(products, p.Product)
	}
	slices.Sort(products)
	return &Tenant{
		ID: t.ID, Slug: t.Slug, Name: t.Name, Status: t.Status, Plan: t.Plan, KeycloakOrgID: t.KeycloakOrgID,
		ProvisioningState: t.ProvisioningState, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Products: products,
		DeletionScheduledAt: t.DeletionScheduledAt,
	}
}

// CreateInput is what CreateTenant takes.
type CreateInput struct {
	Slug, Name, Plan      string
	AdminEmail, AdminName string
}

// Create creates a tenant in status trial. A taken slug is a Conflict,
// decided by the unique index, not by a read before the write. Keycloak
// provisioning is queued in the same transaction and tried once at once; a
// Keycloak failure does not fail the create (it is recorded, and the
// provisioning worker retries it).
func (s *Service) Create(ctx context.Context, in CreateInput) (*Tenant, error) {
	if err := ValidateSlug(in.Slug); err != nil {
		return nil, err
	}
	name, err := text.DisplayName("name", in.Name, MaxNameLen)
	if err != nil {
		return nil, err
	}
	plan, err := parsePlan(in.Plan)
	if err != nil {
		return nil, err
	}
	if err := validateAdmin(&in); err != nil {
		return nil, err
	}
	now := s.clock()
	var created *ent.Tenant
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := tx.Tenant.Create().
			SetID(uuid.New()).
			SetSlug(in.Slug).
			SetName(name).
			SetPlan(plan).
			SetStatus(enttenant.StatusTrial).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			Save(ctx)
		if ent.IsConstraintError(err) {
			return errs.Errorf(errs.Conflict, "slug: %q is already taken", in.Slug)
		}
		if err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
		created = t
		if err := enqueueProvisioning(ctx, tx, t.ID, now, in.AdminEmail, in.AdminName); err != nil {
			return err
		}
		err = s.audit.Record(ctx, tx, audit.Entry{
			Action: "tenant.created", CRUD: "c",
			TenantID: t.ID, TenantName: t.Name,
			Target:      target(t),
			Description: fmt.Sprintf("tenant %s created on plan %s", t.Slug, t.Plan),
			Fields:      map[string]string{"slug": t.Slug, "plan": string(t.Plan), "status": string(t.Status)},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	// The tenant is committed: from here on nothing may report the create
	// as failed (the client's retry would get a conflict for a tenant it
	// was told does not exist). The inline Keycloak attempt is best-effort
	// within the request's time; the read-back outlives the request.
	invite := s.provisionNow(ctx, created.ID)
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), committedReadTimeout)
	defer cancel()
	out, err := s.get(readCtx, s.client, enttenant.ID(created.ID))
	if err != nil {
		s.log.WarnContext(ctx, "tenant created; reading it back failed, answering the row as written", "tenant_id", created.ID, "error", err)
		out = view(created)
	}
	out.InviteURL = invite
	return out, nil
}

// committedReadTimeout bounds the read-back of a tenant that is already
// created.
const committedReadTimeout = 5 * time.Second

func parsePlan(plan string) (enttenant.Plan, error) {
	if plan == "" {
		return enttenant.PlanStarter, nil
	}
	p := enttenant.Plan(plan)
	if err := enttenant.PlanValidator(p); err != nil {
		return "", errs.Errorf(errs.Invalid, "plan: must be one of starter, professional, enterprise")
	}
	return p, nil
}

func target(t *ent.Tenant) audit.Target {
	return audit.Target{ID: t.ID.String(), Name: t.Slug, Type: "tenant"}
}

// Activate moves a tenant trial → active, or frozen → active.
func (s *Service) Activate(ctx context.Context, id string) (*Tenant, error) {
	return s.transition(ctx, id, "activate", "tenant.activated", enttenant.StatusActive,
		enttenant.StatusTrial, enttenant.StatusFrozen)
}

// Cancel moves a tenant trial or active → frozen.
func (s *Service) Cancel(ctx context.Context, id string) (*Tenant, error) {
	return s.transition(ctx, id, "cancel", "tenant.cancelled", enttenant.StatusFrozen,
		enttenant.StatusTrial, enttenant.StatusActive)
}

// readForChange reads the tenant a change is about, in the change's
// transaction: not found is the domain's NotFound.
func readForChange(ctx context.Context, tx *ent.Tx, id uuid.UUID) (*ent.Tenant, error) {
	t, err := tx.Tenant.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "tenant not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// transition changes the status with a compare-and-swap on the status read,
// so two concurrent transitions cannot both win: the loser sees the winner's
// status and gets a Precondition error naming it.
func (s *Service) transition(ctx context.Context, id, verb, action string, to enttenant.Status, from ...enttenant.Status) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	var out *Tenant
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		cur, err := readForChange(ctx, tx, uid)
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.Status) {
			return errs.Errorf(errs.Precondition, "cannot %s a tenant whose status is %s", verb, cur.Status)
		}
		if err := scheduledForDeletion(cur, verb); err != nil {
			return err
		}
		now := s.clock()
		n, err := tx.Tenant.Update().
			Where(enttenant.ID(uid), enttenant.StatusEQ(cur.Status)).
			SetStatus(to).SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("update tenant status: %w", err)
		}
		if n == 0 {
			// Someone else changed it between our read and write.
			latest, err := tx.Tenant.Get(ctx, uid)
			if err != nil {
				return fmt.Errorf("read tenant: %w", err)
			}
			return errs.Errorf(errs.Precondition, "cannot %s a tenant whose status is %s", verb, latest.Status)
		}
		if err := s.audit.Record(ctx, tx, audit.Entry{
			Action: action, CRUD: "u",
			TenantID: uid, TenantName: cur.Name,
			Target:      target(cur),
			Description: fmt.Sprintf("tenant %s: %s → %s", cur.Slug, cur.Status, to),
			Fields:      map[string]string{"from": string(cur.Status), "to": string(to)},
		}); err != nil {
			return err
		}
		out, err = s.get(ctx, tx.Client(), enttenant.ID(uid))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadIn reads a tenant as the API answers it at now through client (a
// change's transaction, so that it sees the state after the change): the
// webhook messages' resource. Not found is errs.NotFound.
func ReadIn(ctx context.Context, client *ent.Client, id uuid.UUID, now time.Time) (*Tenant, error) {
	t, _, err := lookup(ctx, client, enttenant.ID(id), now)
	return t, err
}
