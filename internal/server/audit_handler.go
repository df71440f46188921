package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/audit"
)

// auditHandler serves AuditService, and the NDJSON export on
// GET /v1/audit/export.
type auditHandler struct {
	audit *audit.Service
	log   *slog.Logger
}

var _ tenantregistryv1connect.AuditServiceHandler = (*auditHandler)(nil)

func (h *auditHandler) AppendEvent(ctx context.Context, req *connect.Request[v1.AppendEventRequest]) (*connect.Response[v1.AppendEventResponse], error) {
	m := req.Msg
	row, err := h.audit.Append(ctx, audit.AppendInput{
		TenantID:       m.TenantId,
		Action:         m.Action,
		CRUD:           m.Crud,
		Actor:          audit.Actor{ID: m.GetActor().GetId(), Name: m.GetActor().GetName(), Type: m.GetActor().GetType()},
		Target:         audit.Target{ID: m.GetTarget().GetId(), Name: m.GetTarget().GetName(), Type: m.GetTarget().GetType()},
		Description:    m.Description,
		Fields:         m.Fields,
		SourceIP:       m.SourceIp,
		IsFailure:      m.IsFailure,
		IsAnonymous:    m.IsAnonymous,
		IdempotencyKey: m.IdempotencyKey,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.AppendEventResponse{Event: auditEventPB(row)}), nil
}

func (h *auditHandler) ListEvents(ctx context.Context, req *connect.Request[v1.ListEventsRequest]) (*connect.Response[v1.ListEventsResponse], error) {
	m := req.Msg
	rows, next, err := h.audit.List(ctx, audit.ListInput{
		TenantID:      m.TenantId,
		Action:        m.Action,
		ActorID:       m.ActorId,
		TargetID:      m.TargetId,
		TargetType:    m.TargetType,
		CRUD:          m.Crud,
		CreatedAfter:  timeOf(m.CreatedAfter),
		CreatedBefore: timeOf(m.CreatedBefore),
		PageSize:      m.PageSize,
		Cursor:        m.Cursor,
	})
	if err != nil {
		return nil, err
	}
	if err := recordView(ctx, h.audit, tenantregistryv1connect.AuditServiceListEventsProcedure); err != nil {
		return nil, err
	}
	out := &v1.ListEventsResponse{Events: make([]*v1.AuditEvent, len(rows)), NextCursor: next}
	for i, r := range rows {
		out.Events[i] = auditEventPB(r)
	}
	return connect.NewResponse(out), nil
}

func (h *auditHandler) ExportEvents(ctx context.Context, req *connect.Request[v1.ExportEventsRequest], stream *connect.ServerStream[v1.ExportEventsResponse]) error {
	m := req.Msg
	if err := recordView(ctx, h.audit, tenantregistryv1connect.AuditServiceExportEventsProcedure); err != nil {
		return err
	}
	return h.audit.Export(ctx, audit.ExportInput{
		TenantID:      m.TenantId,
		CreatedAfter:  timeOf(m.CreatedAfter),
		CreatedBefore: timeOf(m.CreatedBefore),
	}, func(row *audit.Event) error {
		return stream.Send(&v1.ExportEventsResponse{Event: auditEventPB(row)})
	})
}

func (h *auditHandler) VerifyAuditChain(ctx context.Context, req *connect.Request[v1.VerifyAuditChainRequest]) (*connect.Response[v1.VerifyAuditChainResponse], error) {
	res, err := h.audit.VerifyChain(ctx, req.Msg.TenantId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.VerifyAuditChainResponse{
		Ok:                 res.OK,
		EventsChecked:      res.EventsChecked,
		FirstBrokenEventId: res.FirstBrokenEventID,
		Reason:             res.Reason,
		Empty:              res.Empty,
		CheckpointSeq:      res.CheckpointSeq,
	}), nil
}

func (h *auditHandler) CreateDigest(ctx context.Context, req *connect.Request[v1.CreateDigestRequest]) (*connect.Response[v1.CreateDigestResponse], error) {
	d, created, err := h.audit.CreateDigest(ctx, req.Msg.TenantId)
	if err != nil {
		return nil, err
	}
	out := &v1.CreateDigestResponse{Created: created}
	if d != nil {
		out.Digest = auditDigestPB(d)
	}
	return connect.NewResponse(out), nil
}

func (h *auditHandler) ListDigests(ctx context.Context, req *connect.Request[v1.ListDigestsRequest]) (*connect.Response[v1.ListDigestsResponse], error) {
	m := req.Msg
	rows, next, err := h.audit.ListDigests(ctx, audit.ListDigestsInput{TenantID: m.TenantId, PageSize: m.PageSize, Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListDigestsResponse{Digests: make([]*v1.AuditDigest, len(rows)), NextCursor: next}
	for i, d := range rows {
		out.Digests[i] = auditDigestPB(d)
	}
	return connect.NewResponse(out), nil
}

func (h *auditHandler) ListPublicKeys(ctx context.Context, req *connect.Request[v1.ListPublicKeysRequest]) (*connect.Response[v1.ListPublicKeysResponse], error) {
	m := req.Msg
	rows, next, err := h.audit.ListPublicKeys(ctx, audit.ListPublicKeysInput{PageSize: m.PageSize, Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListPublicKeysResponse{Keys: make([]*v1.SigningKey, len(rows)), NextCursor: next}
	for i, k := range rows {
		out.Keys[i] = &v1.SigningKey{KeyId: k.KeyID, PublicKeyPem: k.PublicKeyPEM, NotBefore: timestamppb.New(k.NotBefore)}
		if k.NotAfter != nil {
			out.Keys[i].NotAfter = timestamppb.New(*k.NotAfter)
		}
	}
	return connect.NewResponse(out), nil
}

func auditDigestPB(d *audit.Digest) *v1.AuditDigest {
	return &v1.AuditDigest{
		Id: d.ID.String(), TenantId: d.GroupID, FirstSeq: d.FirstSeq, LastSeq: d.LastSeq,
		HeadHash: d.HeadHash, PrevDigestHash: d.PrevDigestHash, DigestHash: d.DigestHash,
		CreatedAt: timestamppb.New(d.CreatedAt), KeyId: d.KeyID, Signature: d.Signature,
	}
}

// exportNDJSON is the REST form of ExportEvents:
//
//	GET /v1/audit/export?tenant_id=…&created_after=…&created_before=…
//
// created_after (inclusive) and created_before (exclusive) are RFC 3339
// times. The answer is application/x-ndjson: one event per line, oldest
// first, in the API's JSON (proto field names), streamed batch by batch. An
// error before the first event is the usual JSON error with its status; an
// error after streaming has begun (the status is sent by then) ends the
// stream with a last line {"error":{"code":…,"message":…}}, so a consumer
// must treat a stream whose last line is not an event as incomplete.
func (h *auditHandler) exportNDJSON(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context() // caller, rule and tenant scope set by admitHTTP
	q := r.URL.Query()
	in := audit.ExportInput{TenantID: q.Get("tenant_id")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"created_after", &in.CreatedAfter}, {"created_before", &in.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeJSONError(w, connect.CodeInvalidArgument, p.name+": want an RFC 3339 time such as 2026-01-02T15:04:05Z")
				return
			}
			*p.dst = t
		}
	}
	if err := recordView(ctx, h.audit, tenantregistryv1connect.AuditServiceExportEventsProcedure); err != nil {
		cerr := toConnectError(ctx, h.log, "GET /v1/audit/export", err).(*connect.Error)
		writeJSONError(w, cerr.Code(), cerr.Message())
		return
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	started := false
	n := 0
	err := h.audit.Export(ctx, in, func(row *audit.Event) error {
		b, err := jsonMarshal.Marshal(auditEventPB(row))
		if err != nil {
			return err
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
		}
		bw.Write(b)
		bw.WriteByte('\n')
		if n++; n%audit.ExportBatch == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			http.NewResponseController(w).Flush()
		}
		return nil
	})
	if err == nil && !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
	if err != nil {
		cerr := toConnectError(ctx, h.log, "GET /v1/audit/export", err)
		var ce *connect.Error
		errors.As(cerr, &ce)
		if !started {
			writeJSONError(w, ce.Code(), ce.Message())
			return
		}
		line, _ := json.Marshal(map[string]map[string]string{"error": {"code": ce.Code().String(), "message": ce.Message()}})
		bw.Write(line)
		bw.WriteByte('\n')
	}
	_ = bw.Flush()
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func auditEventPB(r *audit.Event) *v1.AuditEvent {
	fields := r.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	ev := &v1.AuditEvent{
		Id:          r.ID.String(),
		CreatedAt:   timestamppb.New(r.CreatedAt),
		Action:      r.Action,
		Crud:        r.Crud,
		Group:       &v1.Group{Id: r.GroupID, Name: r.GroupName},
		Actor:       &v1.Actor{Id: r.ActorID, Name: r.ActorName, Type: r.ActorType},
		Target:      &v1.Target{Id: r.TargetID, Name: r.TargetName, Type: r.TargetType},
		SourceIp:    r.SourceIP,
		Description: r.Description,
		IsFailure:   r.IsFailure,
		IsAnonymous: r.IsAnonymous,
		Fields:      fields,
		Hash:        r.Hash,
		AppendedBy:  &v1.Appender{Id: r.AppendedByID, Type: r.AppendedByType, TenantId: r.AppendedByTenant},
		ChainSeq:    r.ChainSeq,
		PrevHash:    r.PrevHash,
		HashVersion: int32(r.HashVersion),
	}
	if r.IdempotencyKey != nil {
		ev.IdempotencyKey = *r.IdempotencyKey
	}
	return ev
}
