// Package cursor is the one keyset pagination of every list (tenants, API
// keys, audit events): page sizes, opaque cursors and the SQL seek.
//
// A cursor names the list it belongs to and a fingerprint of that list's
// filters, and is sealed with HMAC-SHA-256 under a key derived from the
// server's secret: a cursor that was altered, made by anyone but the
// service, or taken from another list or other filters is invalid input,
// never a wrong page. Every list is newest first on (created_at, id), and
// each page seeks past the cursor with one row comparison that the list's
// (…, created_at, id) index answers, so page 1000 costs what page 1 costs.
package cursor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/errs"
)

// Page sizes of every list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// MaxLen bounds an encoded cursor; longer input is rejected unread.
const MaxLen = 512

// MinSecret is the shortest secret NewPager takes.
const MinSecret = 32

// Position is the last row of a page in (time, id) keyset order.
type Position struct {
	Time time.Time
	ID   uuid.UUID
}

// Pager pages the lists of one service; every replica derives the same key
// from the same secret, so a cursor from one replica works on all.
type Pager struct{ key []byte }

// NewPager returns the Pager whose cursors are sealed under a key derived
// from secret (the service's API_KEY_SECRET; at least MinSecret bytes).
func NewPager(secret []byte) (*Pager, error) {
	if len(secret) < MinSecret {
		return nil, errors.New("cursor: the secret must be at least 32 bytes")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tenant-registry cursor key v2"))
	return &Pager{key: m.Sum(nil)}, nil
}

// Request is one call of a list: which list (Kind), the filters a cursor
// is bound to (Scope), and what the client sent.
type Request struct {
	Kind     string
	Scope    []string
	Cursor   string
	PageSize int32
}

// Start checks the page size (0: the default; at most MaxPageSize;
// negative is invalid) and decodes the cursor. after is nil on the first
// page. Fetch size+1 rows and give them to Next.
func (p *Pager) Start(r Request) (size int, after *Position, err error) {
	switch {
	case r.PageSize < 0:
		return 0, nil, errs.Errorf(errs.Invalid, "page_size: must not be negative")
	case r.PageSize == 0:
		size = DefaultPageSize
	default:
		size = int(min(r.PageSize, MaxPageSize))
	}
	if r.Cursor == "" {
		return size, nil, nil
	}
	pos, err := p.decode(r.Kind, fingerprint(r.Scope), r.Cursor)
	if err != nil {
		return 0, nil, err
	}
	return size, &pos, nil
}

// Next cuts rows, fetched with Limit(size+1), to the page, maps each to
// what the list answers with view, and returns the cursor of the next page,
// "" after the last one; at gives a row's position.
func Next[Row, Out any](p *Pager, r Request, rows []Row, size int, at func(Row) Position, view func(Row) Out) ([]Out, string) {
	next := ""
	if len(rows) > size {
		rows = rows[:size]
		next = p.Encode(r.Kind, r.Scope, at(rows[size-1]))
	}
	out := make([]Out, len(rows))
	for i, row := range rows {
		out[i] = view(row)
	}
	return out, next
}

// Encode returns the cursor of the page after pos in list kind with
// filters scope (what Next answers; the benchmark makes deep pages' cursors
// with it).
func (p *Pager) Encode(kind string, scope []string, pos Position) string {
	return p.encode(kind, fingerprint(scope), pos)
}

// Before is the seek of a newest-first page: (timeCol, idCol) < (pos.Time,
// pos.ID), as one row comparison.
func Before(timeCol, idCol string, pos Position) func(*entsql.Selector) {
	return func(s *entsql.Selector) {
		s.Where(entsql.P(func(b *entsql.Builder) {
			b.WriteString("(").WriteString(s.C(timeCol)).WriteString(", ").WriteString(s.C(idCol)).WriteString(") < (")
			b.Arg(pos.Time.UTC())
			b.Comma()
			b.Arg(pos.ID)
			b.WriteString(")")
		}))
	}
}

type payload struct {
	Kind  string    `json:"k"`
	Scope string    `json:"s"`
	Time  time.Time `json:"t"`
	ID    uuid.UUID `json:"i"`
}

var enc = base64.RawURLEncoding

const sumLen = 16

func (p *Pager) encode(kind, scope string, pos Position) string {
	b, _ := json.Marshal(payload{Kind: kind, Scope: scope, Time: pos.Time.UTC(), ID: pos.ID})
	return enc.EncodeToString(append(b, p.seal(b)...))
}

func (p *Pager) decode(kind, scope, s string) (Position, error) {
	bad := errs.Errorf(errs.Invalid, "cursor: not a cursor of this list (was it changed, or made with other filters?)")
	if len(s) > MaxLen {
		return Position{}, bad
	}
	raw, err := enc.DecodeString(s)
	if err != nil || len(raw) <= sumLen {
		return Position{}, bad
	}
	body, sum := raw[:len(raw)-sumLen], raw[len(raw)-sumLen:]
	if !hmac.Equal(sum, p.seal(body)) {
		return Position{}, bad
	}
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil || pl.Kind != kind || pl.Scope != scope || pl.ID == uuid.Nil {
		return Position{}, bad
	}
	return Position{Time: pl.Time, ID: pl.ID}, nil
}

func (p *Pager) seal(b []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write(b)
	return m.Sum(nil)[:sumLen]
}

// fingerprint is the fingerprint of a list's filters.
func fingerprint(filters []string) string {
	h := sha256.Sum256([]byte(strings.Join(filters, "\x00")))
	return enc.EncodeToString(h[:9])
}
