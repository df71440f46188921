package retraced

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
)

// DefaultViewAction is what a viewer token's reads append unless it was
// issued with view_log_action (Retraced's default too).
const DefaultViewAction = "audit.log.view"

// ViewerRequest is GET …/viewertoken's query.
type ViewerRequest struct {
	// GroupID is the group (tenant) to read, canonical.
	GroupID    string
	ActorID    string
	IsAdmin    bool
	ViewAction string
}

// ParseViewerRequest reads the query of GET …/viewertoken, as Retraced
// takes it: group_id (or its deprecated name team_id) required, a tenant
// id; actor_id required (the viewer, actor of the view events; AppendEvent's
// actor.id limits); is_admin "true" or anything else for false;
// view_log_action, when set, an action name. target_id, which scopes a
// Retraced token to one target, is refused: a token here reads its whole
// group.
func ParseViewerRequest(q url.Values) (ViewerRequest, error) {
	invalid := func(format string, args ...any) (ViewerRequest, error) {
		return ViewerRequest{}, errs.Errorf(errs.Invalid, format, args...)
	}
	group := q.Get("group_id")
	if group == "" {
		group = q.Get("team_id")
	}
	if group == "" {
		return invalid("group_id: required (the tenant id whose events the token reads)")
	}
	gid, err := ids.ParseTenant("group_id", group)
	if err != nil {
		return ViewerRequest{}, err
	}
	actor := q.Get("actor_id")
	switch {
	case actor == "":
		return invalid("actor_id: required (who views: the actor of the %s events)", DefaultViewAction)
	case !utf8.ValidString(actor):
		return invalid("actor_id: not valid UTF-8")
	case utf8.RuneCountInString(actor) > audit.MaxIDLen:
		return invalid("actor_id: at most %d characters", audit.MaxIDLen)
	}
	for _, r := range actor {
		if unicode.IsControl(r) {
			return invalid("actor_id: must not contain control characters")
		}
	}
	if q.Get("target_id") != "" {
		return invalid("target_id: not supported: a viewer token reads its whole group")
	}
	action := q.Get("view_log_action")
	if action == "" {
		action = DefaultViewAction
	} else if err := audit.ValidateAction(action); err != nil {
		return invalid("view_log_action: %s", strings.TrimPrefix(errs.MessageOf(err), "action: "))
	}
	return ViewerRequest{GroupID: gid.String(), ActorID: actor, IsAdmin: q.Get("is_admin") == "true", ViewAction: action}, nil
}
