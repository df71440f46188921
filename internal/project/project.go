// Package project manages a tenant's projects (workspaces): create, read,
// list, update and delete, each change with its audit event in the same
// transaction. A project's slug follows the tenant slug rules and is unique
// within its tenant; deleting a project revokes its API keys in the same
// transaction.
package project

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

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
	"github.com/platform/tenant-registry/internal/tenant"
	"github.com/platform/tenant-registry/internal/text"
)

// Limits of a project's fields, in characters (as the columns are sized).
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 2000
)

// listKind is the cursor kind of ListProjects.
const listKind = "projects"

// Project is a project as the service answers it.
type Project struct {
	ID, TenantID            uuid.UUID
	Slug, Name, Description string
	CreatedAt, UpdatedAt    time.Time
}

func view(p *ent.TenantProject) *Project {
	return &Project{
		ID: p.ID, TenantID: p.TenantID, Slug: p.Slug, Name: p.Name, Description: p.Description,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// View is the answer form of a project row (for the tenant export).
func View(p *ent.TenantProject) *Project { return view(p) }

// Service manages projects.
type Service struct {
	client *ent.Client
	audit  *audit.Recorder
	clock  clock.Clock
	pager  *cursor.Pager
}

// Deps are what a Service needs; all are required.
type Deps struct {
	Client   *ent.Client
	Recorder *audit.Recorder
	Clock    clock.Clock
	Pager    *cursor.Pager
}

// NewService returns a Service.
func NewService(d Deps) (*Service, error) {
	if err := deps.Require("project",
		deps.Of("an Ent client", d.Client != nil),
		deps.Of("an audit recorder", d.Recorder != nil),
		deps.Of("a clock", d.Clock != nil),
		deps.Of("a pager", d.Pager != nil),
	); err != nil {
		return nil, err
	}
	return &Service{client: d.Client, audit: d.Recorder, clock: d.Clock, pager: d.Pager}, nil
}

// CreateInput is what CreateProject takes.
type CreateInput struct {
	TenantID, Slug, Name, Description string
}

// Create creates a project. A slug the tenant already has is a Conflict,
// decided by the unique index (tenant_id, slug).
func (s *Service) Create(ctx context.Context, in CreateInput) (*Project, error) {
	tid, err := tenantOf(ctx, in.TenantID)
	if err != nil {
		return nil, err
	}
	if err := validateSlug(in.Slug); err != nil {
		return nil, err
	}
	name, err := text.DisplayName("name", in.Name, MaxNameLen)
	if err != nil {
		return nil, err
	}
	desc, err := description(in.Description)
	if err != nil {
		return nil, err
	}
	var out *ent.TenantProject
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := readTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		now := s.clock()
		p, err := tx.TenantProject.Create().
			SetID(uuid.New()).SetTenantID(tid).SetSlug(in.Slug).SetName(name).SetDescription(desc).
			SetCreatedAt(now).SetUpdatedAt(now).
			Save(ctx)
		if ent.IsConstraintError(err) {
			return errs.Errorf(errs.Conflict, "slug: the tenant already has a project %q", in.Slug)
		}
		if err != nil {
			return fmt.Errorf("insert project: %w", err)
		}
		out = p
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "project.created", CRUD: "c",
			TenantID: tid, TenantName: t.Name,
			Target:      target(p),
			Description: fmt.Sprintf("project %s created in tenant %s", p.Slug, t.Slug),
			Fields:      map[string]string{"slug": p.Slug, "name": p.Name},
		})
	})
	if err != nil {
		return nil, err
	}
	return view(out), nil
}

// Get returns the tenant's project id; another tenant's is not found.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Project, error) {
	tid, err := tenantOf(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	pid, err := ids.Parse("id", "a project id", id)
	if err != nil {
		return nil, err
	}
	p, err := s.client.TenantProject.Query().Where(tenantproject.ID(pid), tenantproject.TenantID(tid)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "project not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read project: %w", err)
	}
	return view(p), nil
}

// ListInput pages through a tenant's projects.
type ListInput struct {
	TenantID string
	PageSize int32
	Cursor   string
}

// List pages through a tenant's projects newest first, keyset on
// (created_at, id). An unknown tenant is not found.
func (s *Service) List(ctx context.Context, in ListInput) ([]*Project, string, error) {
	tid, err := tenantOf(ctx, in.TenantID)
	if err != nil {
		return nil, "", err
	}
	page := cursor.Request{Kind: listKind, Scope: []string{tid.String()}, Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	q := s.client.TenantProject.Query().Where(tenantproject.TenantID(tid))
	if after != nil {
		q = q.Where(cursor.Before(tenantproject.FieldCreatedAt, tenantproject.FieldID, *after))
	}
	rows, err := q.Order(ent.Desc(tenantproject.FieldCreatedAt), ent.Desc(tenantproject.FieldID)).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list projects: %w", err)
	}
	if len(rows) == 0 && in.Cursor == "" {
		if ok, err := s.client.Tenant.Query().Where(enttenant.ID(tid)).Exist(ctx); err != nil {
			return nil, "", fmt.Errorf("read tenant: %w", err)
		} else if !ok {
			return nil, "", errs.Errorf(errs.NotFound, "tenant not found")
		}
	}
	out, next := cursor.Next(s.pager, page, rows, size, func(p *ent.TenantProject) cursor.Position {
		return cursor.Position{Time: p.CreatedAt, ID: p.ID}
	}, view)
	return out, next, nil
}

// UpdateInput is what UpdateProject takes: a nil field keeps its value.
type UpdateInput struct {
	TenantID, ID            string
	Slug, Name, Description *string
}

// Update changes the fields given (at least one, else Invalid); the event
// project.updated holds each changed field's old and new value
// (old_<field>, new_<field>). A request that changes nothing writes nothing.
func (s *Service) Update(ctx context.Context, in UpdateInput) (*Project, error) {
	tid, err := tenantOf(ctx, in.TenantID)
	if err != nil {
		return nil, err
	}
	pid, err := ids.Parse("id", "a project id", in.ID)
	if err != nil {
		return nil, err
	}
	if in.Slug == nil && in.Name == nil && in.Description == nil {
		return nil, errs.Errorf(errs.Invalid, "update: send at least one of slug, name, description")
	}
	var slug, name, desc string
	if in.Slug != nil {
		slug = *in.Slug
		if err := validateSlug(slug); err != nil {
			return nil, err
		}
	}
	if in.Name != nil {
		if name, err = text.DisplayName("name", *in.Name, MaxNameLen); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if desc, err = description(*in.Description); err != nil {
			return nil, err
		}
	}
	var out *ent.TenantProject
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := readTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		cur, err := tx.TenantProject.Query().Where(tenantproject.ID(pid), tenantproject.TenantID(tid)).Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "project not found")
		}
		if err != nil {
			return fmt.Errorf("read project: %w", err)
		}
		now := s.clock()
		upd := tx.TenantProject.UpdateOne(cur).SetUpdatedAt(now)
		fields := map[string]string{}
		if in.Slug != nil && slug != cur.Slug {
			upd.SetSlug(slug)
			fields["old_slug"], fields["new_slug"] = cur.Slug, slug
		}
		if in.Name != nil && name != cur.Name {
			upd.SetName(name)
			fields["old_name"], fields["new_name"] = cur.Name, name
		}
		if in.Description != nil && desc != cur.Description {
			upd.SetDescription(desc)
			fields["old_description"], fields["new_description"] = text.Truncate(cur.Description, audit.MaxFieldValueLen), text.Truncate(desc, audit.MaxFieldValueLen)
		}
		if len(fields) == 0 {
			out = cur
			return nil
		}
		p, err := upd.Save(ctx)
		if ent.IsConstraintError(err) {
			return errs.Errorf(errs.Conflict, "slug: the tenant already has a project %q", slug)
		}
		if err != nil {
			return fmt.Errorf("update project: %w", err)
		}
		out = p
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "project.updated", CRUD: "u",
			TenantID: tid, TenantName: t.Name,
			Target:      target(p),
			Description: fmt.Sprintf("project %s of tenant %s updated", p.Slug, t.Slug),
			Fields:      fields,
		})
	})
	if err != nil {
		return nil, err
	}
	return view(out), nil
}

// Delete deletes the tenant's project id and, in the same transaction,
// revokes its API keys that are not revoked yet: one api_key.revoked event
// per key (fields reason=project_deleted, project_id), then project.deleted
// (field revoked_keys: how many). The revokes reach every replica's verify
// cache as RevokeApiKey's do (the api_keys triggers, and this replica's
// commit hook). It answers the project as it was and the revoked keys' ids.
func (s *Service) Delete(ctx context.Context, tenantID, id string) (*Project, []uuid.UUID, error) {
	tid, err := tenantOf(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	pid, err := ids.Parse("id", "a project id", id)
	if err != nil {
		return nil, nil, err
	}
	var out *ent.TenantProject
	var revoked []uuid.UUID
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := readTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		p, err := tx.TenantProject.Query().Where(tenantproject.ID(pid), tenantproject.TenantID(tid)).Only(ctx)
		if ent.IsNotFound(err) {
			return errs.Errorf(errs.NotFound, "project not found")
		}
		if err != nil {
			return fmt.Errorf("read project: %w", err)
		}
		out = p
		now := s.clock()
		keys, err := tx.APIKey.Query().
			Where(entapikey.ProjectID(pid), entapikey.RevokedAtIsNil()).
			Order(ent.Asc(entapikey.FieldCreatedAt), ent.Asc(entapikey.FieldID)).
			All(ctx)
		if err != nil {
			return fmt.Errorf("read project keys: %w", err)
		}
		for _, k := range keys {
			n, err := tx.APIKey.Update().Where(entapikey.ID(k.ID), entapikey.RevokedAtIsNil()).
				SetRevokedAt(now).SetUpdatedAt(now).Save(ctx)
			if err != nil {
				return fmt.Errorf("revoke api key: %w", err)
			}
			if n == 0 {
				continue
			}
			revoked = append(revoked, k.ID)
			if err := s.audit.Record(ctx, tx, audit.Entry{
				Action: "api_key.revoked", CRUD: "u",
				TenantID: tid, TenantName: t.Name,
				Target:      audit.Target{ID: k.ID.String(), Name: k.Name, Type: "api_key"},
				Description: fmt.Sprintf("API key %q (%s…) revoked: its project %s was deleted", k.Name, k.Prefix, p.Slug),
				Fields:      map[string]string{"prefix": k.Prefix, "reason": "project_deleted", "project_id": p.ID.String()},
			}); err != nil {
				return err
			}
		}
		if err := tx.TenantProject.DeleteOne(p).Exec(ctx); err != nil {
			return fmt.Errorf("delete project: %w", err)
		}
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "project.deleted", CRUD: "d",
			TenantID: tid, TenantName: t.Name,
			Target:      target(p),
			Description: fmt.Sprintf("project %s of tenant %s deleted; %d API keys revoked", p.Slug, t.Slug, len(revoked)),
			Fields:      map[string]string{"slug": p.Slug, "revoked_keys": fmt.Sprint(len(revoked))},
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return view(out), revoked, nil
}

// ExportAll calls fn with each of the tenant's projects, oldest first (the
// tenant export). The caller has checked the tenant.
func (s *Service) ExportAll(ctx context.Context, tenantID uuid.UUID, fn func(*Project) error) error {
	after := time.Time{}
	afterID := uuid.Nil
	for {
		q := s.client.TenantProject.Query().Where(tenantproject.TenantID(tenantID))
		if afterID != uuid.Nil {
			q = q.Where(tenantproject.Or(
				tenantproject.CreatedAtGT(after),
				tenantproject.And(tenantproject.CreatedAt(after), tenantproject.IDGT(afterID)),
			))
		}
		rows, err := q.Order(ent.Asc(tenantproject.FieldCreatedAt), ent.Asc(tenantproject.FieldID)).Limit(exportBatch).All(ctx)
		if err != nil {
			return fmt.Errorf("export projects: %w", err)
		}
		for _, p := range rows {
			if err := fn(view(p)); err != nil {
				return err
			}
		}
		if len(rows) < exportBatch {
			return nil
		}
		last := rows[len(rows)-1]
		after, afterID = last.CreatedAt, last.ID
	}
}

const exportBatch = 500

// tenantOf parses the tenant id and keeps a tenant's callers to their own
// tenant (another's is not found).
func tenantOf(ctx context.Context, tenantID string) (uuid.UUID, error) {
	tid, err := ids.ParseTenant("tenant_id", tenantID)
	if err != nil {
		return uuid.Nil, err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return uuid.Nil, err
	}
	return tid, nil
}

func readTenant(ctx context.Context, tx *ent.Tx, tid uuid.UUID) (*ent.Tenant, error) {
	t, err := tx.Tenant.Get(ctx, tid)
	if ent.IsNotFound(err) {
		return nil, errs.Errorf(errs.NotFound, "tenant not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// validateSlug applies the tenant slug rules, naming the field slug.
func validateSlug(slug string) error { return tenant.ValidateSlug(slug) }

func description(d string) (string, error) {
	if len([]rune(d)) > MaxDescriptionLen {
		return "", errs.Errorf(errs.Invalid, "description: must be at most %d characters", MaxDescriptionLen)
	}
	return d, nil
}

func target(p *ent.TenantProject) audit.Target {
	return audit.Target{ID: p.ID.String(), Name: p.Slug, Type: "project"}
}
