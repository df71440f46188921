package server

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/project"
)

// projectHandler serves ProjectService.
type projectHandler struct {
	tenantregistryv1connect.UnimplementedProjectServiceHandler
	projects *project.Service
}

var _ tenantregistryv1connect.ProjectServiceHandler = (*projectHandler)(nil)

func (h *projectHandler) CreateProject(ctx context.Context, req *connect.Request[v1.CreateProjectRequest]) (*connect.Response[v1.CreateProjectResponse], error) {
	m := req.Msg
	p, err := h.projects.Create(ctx, project.CreateInput{TenantID: m.TenantId, Slug: m.Slug, Name: m.Name, Description: m.Description})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateProjectResponse{Project: projectPB(p)}), nil
}

func (h *projectHandler) ListProjects(ctx context.Context, req *connect.Request[v1.ListProjectsRequest]) (*connect.Response[v1.ListProjectsResponse], error) {
	m := req.Msg
	ps, next, err := h.projects.List(ctx, project.ListInput{TenantID: m.TenantId, PageSize: m.PageSize, Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListProjectsResponse{Projects: make([]*v1.Project, len(ps)), NextCursor: next}
	for i, p := range ps {
		out.Projects[i] = projectPB(p)
	}
	return connect.NewResponse(out), nil
}

func (h *projectHandler) GetProject(ctx context.Context, req *connect.Request[v1.GetProjectRequest]) (*connect.Response[v1.GetProjectResponse], error) {
	p, err := h.projects.Get(ctx, req.Msg.TenantId, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetProjectResponse{Project: projectPB(p)}), nil
}

func (h *projectHandler) UpdateProject(ctx context.Context, req *connect.Request[v1.UpdateProjectRequest]) (*connect.Response[v1.UpdateProjectResponse], error) {
	m := req.Msg
	p, err := h.projects.Update(ctx, project.UpdateInput{
		TenantID: m.TenantId, ID: m.Id, Slug: m.Slug, Name: m.Name, Description: m.Description,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.UpdateProjectResponse{Project: projectPB(p)}), nil
}

func (h *projectHandler) DeleteProject(ctx context.Context, req *connect.Request[v1.DeleteProjectRequest]) (*connect.Response[v1.DeleteProjectResponse], error) {
	p, revoked, err := h.projects.Delete(ctx, req.Msg.TenantId, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	out := &v1.DeleteProjectResponse{Project: projectPB(p), RevokedApiKeyIds: make([]string, len(revoked))}
	for i, id := range revoked {
		out.RevokedApiKeyIds[i] = id.String()
	}
	return connect.NewResponse(out), nil
}

func projectPB(p *project.Project) *v1.Project {
	return &v1.Project{
		Id: p.ID.String(), TenantId: p.TenantID.String(), Slug: p.Slug, Name: p.Name, Description: p.Description,
		CreatedAt: timestamppb.New(p.CreatedAt), UpdatedAt: timestamppb.New(p.UpdatedAt),
	}
}
