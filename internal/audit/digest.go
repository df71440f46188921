package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditdigest"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/auditsigningkey"
	"github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/store"
)

// Digest is a signed statement of a tenant's chain head (see
// internal/evidence for the signed encoding).
type Digest struct {
	ID uuid.UUID
	// GroupID is the tenant (its group), for ever: digests outlive a purged
	// tenant as its events do.
	GroupID           string
	FirstSeq, LastSeq int64
	HeadHash          string
	PrevDigestHash    string
	DigestHash        string
	CreatedAt         time.Time
	KeyID             string
	Signature         string
}

// Evidence is the signed part of d.
func (d *Digest) Evidence() evidence.Digest {
	return evidence.Digest{
		GroupID: d.GroupID, FirstSeq: d.FirstSeq, LastSeq: d.LastSeq, HeadHash: d.HeadHash,
		PrevDigestHash: d.PrevDigestHash, CreatedAt: d.CreatedAt, KeyID: d.KeyID,
	}
}

func digestOf(r *ent.AuditDigest) *Digest {
	return &Digest{
		ID: r.ID, GroupID: r.GroupID, FirstSeq: r.FirstSeq, LastSeq: r.LastSeq, HeadHash: r.HeadHash,
		PrevDigestHash: r.PrevDigestHash, DigestHash: r.DigestHash, CreatedAt: r.CreatedAt,
		KeyID: r.KeyID, Signature: r.Signature,
	}
}

// SigningKeyInfo is a public signing key as ListPublicKeys answers it.
type SigningKeyInfo struct {
	ID           uuid.UUID
	KeyID        string
	PublicKeyPEM string
	NotBefore    time.Time
	NotAfter     *time.Time
}

func keyInfoOf(r *ent.AuditSigningKey) *SigningKeyInfo {
	return &SigningKeyInfo{ID: r.ID, KeyID: r.KeyID, PublicKeyPEM: r.PublicKeyPem, NotBefore: r.NotBefore, NotAfter: r.NotAfter}
}

// ErrKeyRetired: the configured signing key was superseded by a newer one
// (a replica started with it); this replica signs no more digests.
var ErrKeyRetired = errors.New("the audit signing key was superseded by a newer key")

// RegisterSigningKey records the public half of the configured signing key
// (AUDIT_SIGNING_KEY_FILE) when it is new, with not_before now, and closes
// (not_after now) every older key still open: from then on they sign no
// more. Replicas starting with the same key record it once. A key that was
// superseded is refused: configure the new one.
func (s *Service) RegisterSigningKey(ctx context.Context) error {
	k := s.opts.Signer
	if k == nil {
		return errors.New("audit: no signing key")
	}
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		if s.postgres() {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('audit:signing-keys', 7351))"); err != nil {
				return fmt.Errorf("lock signing keys: %w", err)
			}
		}
		row, err := tx.AuditSigningKey.Query().Where(auditsigningkey.KeyID(k.ID())).Only(ctx)
		switch {
		case err == nil:
			if row.NotAfter != nil {
				return fmt.Errorf("%w at %s (key %s)", ErrKeyRetired, row.NotAfter.UTC().Format(time.RFC3339), k.ID())
			}
			return nil
		case !ent.IsNotFound(err):
			return fmt.Errorf("read signing keys: %w", err)
		}
		now := s.clock().UTC().Truncate(time.Microsecond)
		if _, err := tx.AuditSigningKey.Update().Where(auditsigningkey.NotAfterIsNil()).SetNotAfter(now).Save(ctx); err != nil {
			return fmt.Errorf("close superseded signing keys: %w", err)
		}
		if err := tx.AuditSigningKey.Create().SetKeyID(k.ID()).SetPublicKeyPem(k.PublicKeyPEM()).SetNotBefore(now).Exec(ctx); err != nil {
			return fmt.Errorf("record signing key: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.opts.Logger.InfoContext(ctx, "audit digests are signed with key "+k.ID())
	return nil
}

// CreateDigest digests a tenant's chain now (POST /v1/audit/digests): when
// it moved since the tenant's last digest, a new digest covering what is
// new is signed and stored (created true); otherwise the last digest is
// answered. A chain without events answers nil. Writing a digest records
// no audit event: the digest row is the record (an event would move the
// chain it digests).
func (s *Service) CreateDigest(ctx context.Context, tenantID string) (d *Digest, created bool, err error) {
	groupID, err := scope(ctx, tenantID, false)
	if err != nil {
		return nil, false, err
	}
	if s.opts.Signer == nil {
		return nil, false, errs.Errorf(errs.Precondition, "audit digests are not configured (no signing key)")
	}
	d, created, err = s.digestGroup(ctx, groupID)
	var broken brokenChainError
	switch {
	case errors.As(err, &broken):
		return nil, false, errs.Errorf(errs.Precondition, "the chain does not verify (event %s: %s): it is not signed", broken.id, broken.reason)
	case errors.Is(err, ErrKeyRetired):
		return nil, false, errs.Errorf(errs.Unavailable, "this replica's signing key was superseded; retry")
	case err != nil:
		return nil, false, err
	}
	if d == nil {
		exists, err := s.client.Tenant.Query().Where(tenant.ID(uuid.MustParse(groupID))).Exist(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("read tenant: %w", err)
		}
		if !exists {
			return nil, false, errs.Errorf(errs.NotFound, "tenant not found")
		}
	}
	return d, created, nil
}

// DigestAll is the digest job (internal/worker, every
// AUDIT_DIGEST_INTERVAL, on every replica): a digest for each tenant whose
// chain moved since its last one. Replicas doing it at once write one
// digest per head between them (the chain lock, and unique first_seq and
// last_seq per tenant). A chain that does not verify is not signed; it is
// logged, and the others go on.
func (s *Service) DigestAll(ctx context.Context) error {
	if s.opts.Signer == nil {
		return errors.New("audit digests: no signing key")
	}
	var heads []struct {
		GroupID string `json:"group_id"`
		Max     int64  `json:"max"`
	}
	if err := s.client.AuditLog.Query().GroupBy(auditlog.FieldGroupID).
		Aggregate(ent.As(ent.Max(auditlog.FieldChainSeq), "max")).Scan(ctx, &heads); err != nil {
		return fmt.Errorf("read audit chain heads: %w", err)
	}
	var last []struct {
		GroupID string `json:"group_id"`
		Max     int64  `json:"max"`
	}
	if err := s.client.AuditDigest.Query().GroupBy(auditdigest.FieldGroupID).
		Aggregate(ent.As(ent.Max(auditdigest.FieldLastSeq), "max")).Scan(ctx, &last); err != nil {
		return fmt.Errorf("read audit digests: %w", err)
	}
	digested := make(map[string]int64, len(last))
	for _, l := range last {
		digested[l.GroupID] = l.Max
	}
	n := 0
	var errList []error
	for _, h := range heads {
		if h.Max <= digested[h.GroupID] {
			continue
		}
		_, created, err := s.digestGroup(ctx, h.GroupID)
		var broken brokenChainError
		switch {
		case errors.As(err, &broken):
			s.opts.Logger.ErrorContext(ctx, "audit digest: the chain does not verify, it is not signed", "group", h.GroupID, "event", broken.id, "reason", broken.reason)
		case errors.Is(err, ErrKeyRetired):
			s.opts.Logger.WarnContext(ctx, "audit digest: this replica's signing key was superseded; replicas with the new key digest")
			return nil
		case err != nil:
			errList = append(errList, fmt.Errorf("group %s: %w", h.GroupID, err))
		case created:
			n++
		}
	}
	if n > 0 {
		s.opts.Logger.InfoContext(ctx, "audit digests signed", "digests", n)
	}
	return errors.Join(errList...)
}

// digestGroup signs a digest of the group's chain when it moved since its
// last digest. The new segment is verified from the last digest's head (or
// the retention checkpoint after it) before it is signed, so a tampered
// chain is never signed. The long walk runs first, outside any lock; then,
// in one transaction holding the chain's lock (PostgreSQL) — the head cannot
// move, and two replicas queue up, the second finding the first one's
// digest — only what came since is walked, from the last event the first
// walk verified (whose hash is checked again), and the digest is written.
// Answers the last digest, and whether it is new; nil when the chain has no
// events.
func (s *Service) digestGroup(ctx context.Context, groupID string) (*Digest, bool, error) {
	k := s.opts.Signer
	pre, err := digestStart(ctx, s.client, groupID)
	if err != nil {
		return nil, false, err
	}
	if err := pre.walk(ctx, s.client, groupID); err != nil {
		return nil, false, err
	}
	var out *ent.AuditDigest
	created := false
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		if s.postgres() {
			if err := lockChain(ctx, tx, groupID); err != nil {
				return err
			}
		}
		key, err := tx.AuditSigningKey.Query().Where(auditsigningkey.KeyID(k.ID())).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return fmt.Errorf("audit digest: signing key %s is not recorded (RegisterSigningKey)", k.ID())
		case err != nil:
			return fmt.Errorf("read signing key: %w", err)
		case key.NotAfter != nil:
			return ErrKeyRetired
		}
		client := tx.Client()
		cur, err := digestStart(ctx, client, groupID)
		if err != nil {
			return err
		}
		out = cur.last
		if cur.sameStart(pre) && pre.link.next-1 > cur.from {
			// Go on from where the first walk got, if that event is
			// still the one it verified.
			seq := pre.link.next - 1
			row, err := client.AuditLog.Query().Where(auditlog.GroupID(groupID), auditlog.ChainSeq(seq)).
				Select(auditlog.FieldHash).Only(ctx)
			if err != nil && !ent.IsNotFound(err) {
				return fmt.Errorf("read audit chain: %w", err)
			}
			if err == nil && row.Hash == pre.link.prevHash {
				cur.link = pre.link
			}
		}
		if err := cur.walk(ctx, client, groupID); err != nil {
			return err
		}
		headSeq, headHash := cur.link.next-1, cur.link.prevHash
		if headSeq == 0 || (cur.last != nil && headSeq <= cur.last.LastSeq) {
			return nil // nothing (new) to digest
		}
		first, prevDigest := int64(1), ""
		if cur.last != nil {
			first, prevDigest = cur.last.LastSeq+1, cur.last.DigestHash
		}
		d := evidence.Digest{
			GroupID: groupID, FirstSeq: first, LastSeq: headSeq, HeadHash: headHash,
			PrevDigestHash: prevDigest, CreatedAt: s.clock().UTC().Truncate(time.Microsecond), KeyID: k.ID(),
		}
		sig, err := k.Sign(d)
		if err != nil {
			return err
		}
		row, err := tx.AuditDigest.Create().
			SetID(uuid.New()).SetGroupID(groupID).SetFirstSeq(d.FirstSeq).SetLastSeq(d.LastSeq).
			SetHeadHash(d.HeadHash).SetPrevDigestHash(d.PrevDigestHash).SetDigestHash(d.Hash()).
			SetCreatedAt(d.CreatedAt).SetKeyID(d.KeyID).SetSignature(sig).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("write audit digest: %w", err)
		}
		out, created = row, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if out == nil {
		return nil, false, nil
	}
	return digestOf(out), created, nil
}

// digestWalk is where the next digest of a group starts (its last digest,
// and the chain position after it: the digest's head, or the retention
// checkpoint past it) and how far a walk from there got.
type digestWalk struct {
	last *ent.AuditDigest
	from int64
	link chainLink
}

func digestStart(ctx context.Context, client *ent.Client, groupID string) (*digestWalk, error) {
	last, err := client.AuditDigest.Query().Where(auditdigest.GroupID(groupID)).
		Order(ent.Desc(auditdigest.FieldLastSeq)).First(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("read audit digests: %w", err)
	}
	w := &digestWalk{}
	from, fromHash := int64(0), ""
	if last != nil {
		w.last = last
		from, fromHash = last.LastSeq, last.HeadHash
	}
	cpSeq, cpHash, err := latestCheckpoint(ctx, client, groupID)
	if err != nil {
		return nil, err
	}
	switch {
	case cpSeq > from:
		// Retention deleted past the last digest; it verified what it
		// deleted, so the walk starts at its checkpoint.
		from, fromHash = cpSeq, cpHash
	case cpSeq == from && cpSeq > 0 && cpHash != fromHash:
		return nil, brokenChainError{id: "checkpoint", reason: "the retention checkpoint's hash is not the last digest's head"}
	}
	w.from, w.link = from, chainLink{next: from + 1, prevHash: fromHash}
	return w, nil
}

// sameStart: w and o start from the same digest and chain position.
func (w *digestWalk) sameStart(o *digestWalk) bool {
	sameDigest := (w.last == nil) == (o.last == nil) && (w.last == nil || w.last.ID == o.last.ID)
	return sameDigest && w.from == o.from
}

// walk verifies the chain from w.link to its head, advancing w.link.
func (w *digestWalk) walk(ctx context.Context, client *ent.Client, groupID string) error {
	for {
		rows, err := chainPage(ctx, client, groupID, w.link.next-1, VerifyBatch)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if reason := w.link.check(r); reason != "" {
				return brokenChainError{id: r.ID.String(), reason: reason}
			}
		}
		if len(rows) < VerifyBatch {
			return nil
		}
	}
}

// ListDigestsInput pages a tenant's digests.
type ListDigestsInput struct {
	TenantID string
	PageSize int32
	Cursor   string
}

const digestListKind = "audit_digests"

// ListDigests pages through a tenant's digests newest first (keyset on
// (created_at, id), the (group_id, created_at, id) index). A purged
// tenant's digests are still listed under its id.
func (s *Service) ListDigests(ctx context.Context, in ListDigestsInput) ([]*Digest, string, error) {
	groupID, err := scope(ctx, in.TenantID, false)
	if err != nil {
		return nil, "", err
	}
	page := cursor.Request{Kind: digestListKind, Cursor: in.Cursor, PageSize: in.PageSize, Scope: []string{groupID}}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	q := s.client.AuditDigest.Query().Where(auditdigest.GroupID(groupID))
	if after != nil {
		q.Where(cursor.Before(auditdigest.FieldCreatedAt, auditdigest.FieldID, *after))
	}
	rows, err := q.Order(ent.Desc(auditdigest.FieldCreatedAt), ent.Desc(auditdigest.FieldID)).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list audit digests: %w", err)
	}
	out, next := cursor.Next(s.pager, page, rows, size, func(r *ent.AuditDigest) cursor.Position {
		return cursor.Position{Time: r.CreatedAt, ID: r.ID}
	}, digestOf)
	return out, next, nil
}

// ListPublicKeysInput pages the signing keys.
type ListPublicKeysInput struct {
	PageSize int32
	Cursor   string
}

const keyListKind = "audit_signing_keys"

// ListPublicKeys pages through every key that has been configured to sign
// digests, newest first (keyset on (not_before, id)).
func (s *Service) ListPublicKeys(ctx context.Context, in ListPublicKeysInput) ([]*SigningKeyInfo, string, error) {
	page := cursor.Request{Kind: keyListKind, Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	q := s.client.AuditSigningKey.Query()
	if after != nil {
		q.Where(cursor.Before(auditsigningkey.FieldNotBefore, auditsigningkey.FieldID, *after))
	}
	rows, err := q.Order(ent.Desc(auditsigningkey.FieldNotBefore), ent.Desc(auditsigningkey.FieldID)).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list signing keys: %w", err)
	}
	out, next := cursor.Next(s.pager, page, rows, size, func(r *ent.AuditSigningKey) cursor.Position {
		return cursor.Position{Time: r.NotBefore, ID: r.ID}
	}, keyInfoOf)
	return out, next, nil
}
