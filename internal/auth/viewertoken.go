package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

// ViewerTokenPrefix starts every Retraced viewer token, so that the
// authenticator tells it apart from a JWT (which starts "eyJ") on the same
// "Authorization: Bearer" header.
const ViewerTokenPrefix = "rtv1."

// ViewerTokenTTL is how long a viewer token is good for.
const ViewerTokenTTL = 5 * time.Minute

// maxViewerTokenLen bounds what is decoded at all.
const maxViewerTokenLen = 4096

// viewerKeyLabel derives the viewer tokens' HMAC key from API_KEY_SECRET:
// every replica shares the secret, so every replica verifies every token,
// and the label keeps the key apart from the API keys' own HMAC.
const viewerKeyLabel = "tenant-registry retraced viewer token v1"

// ViewerTokens issues and verifies Retraced viewer tokens: stateless,
// HMAC-SHA-256-signed grants to read one group's audit log as one actor
// for ViewerTokenTTL.
//
// A token is "rtv1." + base64url(payload) + "." + base64url(mac), the
// payload a JSON object {"g": group (tenant) id, "a": actor id, "adm":
// is_admin, "act": view action, "k": issuing API key id, "iat", "exp":
// Unix seconds}, the mac HMAC-SHA-256 over everything before the last dot
// under HMAC-SHA-256(API_KEY_SECRET, viewerKeyLabel).
type ViewerTokens struct {
	key   []byte
	clock clock.Clock
}

// NewViewerTokens returns the codec keyed from secret (API_KEY_SECRET).
func NewViewerTokens(secret []byte, clock clock.Clock) *ViewerTokens {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(viewerKeyLabel))
	return &ViewerTokens{key: m.Sum(nil), clock: clock}
}

type viewerPayload struct {
	Group   string `json:"g"`
	Actor   string `json:"a"`
	Admin   bool   `json:"adm,omitempty"`
	Action  string `json:"act"`
	Key     string `json:"k"`
	Issued  int64  `json:"iat"`
	Expires int64  `json:"exp"`
}

// Issue returns a token granting v (its ExpiresAt is set here, now plus
// ViewerTokenTTL) and the grant as issued.
func (t *ViewerTokens) Issue(v principal.Viewer) (string, principal.Viewer) {
	now := t.clock().UTC()
	v.ExpiresAt = now.Add(ViewerTokenTTL).Truncate(time.Second)
	body, _ := json.Marshal(viewerPayload{
		Group: v.GroupID, Actor: v.ActorID, Admin: v.IsAdmin, Action: v.ViewAction, Key: v.KeyID,
		Issued: now.Unix(), Expires: v.ExpiresAt.Unix(),
	})
	signed := ViewerTokenPrefix + base64.RawURLEncoding.EncodeToString(body)
	return signed + "." + base64.RawURLEncoding.EncodeToString(t.mac(signed)), v
}

func (t *ViewerTokens) mac(signed string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Verify checks a token and returns its grant. Every failure (malformed,
// tampered, signed with another key, expired) is Unauthenticated.
func (t *ViewerTokens) Verify(token string) (principal.Viewer, error) {
	bad := func(why string) (principal.Viewer, error) {
		return principal.Viewer{}, errs.Errorf(errs.Unauthenticated, "viewer token: %s", why)
	}
	if len(token) > maxViewerTokenLen || !strings.HasPrefix(token, ViewerTokenPrefix) {
		return bad("malformed")
	}
	dot := strings.LastIndexByte(token, '.')
	if dot < len(ViewerTokenPrefix) {
		return bad("malformed")
	}
	signed, sig := token[:dot], token[dot+1:]
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, t.mac(signed)) {
		return bad("bad signature")
	}
	body, err := base64.RawURLEncoding.DecodeString(signed[len(ViewerTokenPrefix):])
	if err != nil {
		return bad("malformed")
	}
	var p viewerPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.Group == "" || p.Actor == "" || p.Action == "" {
		return bad("malformed")
	}
	exp := time.Unix(p.Expires, 0).UTC()
	if !t.clock().Before(exp) {
		return bad(fmt.Sprintf("expired at %s", exp.Format(time.RFC3339)))
	}
	return principal.Viewer{GroupID: p.Group, ActorID: p.Actor, IsAdmin: p.Admin, ViewAction: p.Action, KeyID: p.Key, ExpiresAt: exp}, nil
}

// viewerPrincipal is the caller a viewer token stands for: a user of the
// group's tenant with no role, who may only read that tenant's log.
func viewerPrincipal(v principal.Viewer) principal.Principal {
	return principal.Principal{Subject: v.ActorID, Name: v.ActorID, Type: principal.ActorUser, TenantID: v.GroupID, Viewer: &v}
}
