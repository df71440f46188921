package retraced

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/text"
)

// Event is a Retraced CreateEventRequest as a client publishes it (the
// JSON attributes are the fields' names in snake case).
//
// Mapped onto the registry's event: action, crud, actor (id, name; type
// user), target (id, name, type), description, source_ip, is_failure,
// is_anonymous and fields, checked with AppendEvent's limits. group.id,
// when present, must be the publishing key's tenant (the group is always
// that tenant, named as the registry names it). created is checked (an
// RFC 3339 time) but not stored: the registry stamps the time it appends,
// the chain's order. Accepted and not stored: group.name, actor.href,
// target.href, component, version. Refused (400), because the registry
// would drop them while Retraced keeps them: external_id, metadata,
// actor.fields, target.fields. Any other key is refused too.
type Event struct {
	Action      string
	CRUD        string
	Group       Object
	Created     string
	Actor       Object
	Target      Object
	SourceIP    string
	Description string
	IsFailure   bool
	IsAnonymous bool
	Fields      map[string]string
	Component   string
	Version     string
	ExternalID  string
	Metadata    map[string]string
}

// Object is a Retraced group, actor or target. Present is whether the JSON
// object had any key (lodash's isEmpty, which the hash and Retraced's
// checks use: an absent, null or {} object is no object).
type Object struct {
	Present              bool
	ID, Name, Href, Type string
	Fields               map[string]string
}

// Decode reads one event from r (a JSON object) and checks what the
// registry's append does not: the shape, the Retraced-only attributes and
// Retraced's own rules (group.id, actor.id and target.id present when
// their object is, created a time). Every failure is an Invalid error
// whose message starts with the attribute's name.
func Decode(r io.Reader) (*Event, error) {
	invalid := func(format string, args ...any) (*Event, error) {
		return nil, errs.Errorf(errs.Invalid, format, args...)
	}
	dec := json.NewDecoder(r)
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return invalid("request body: empty; want the event as a JSON object")
		case errors.As(err, &typ):
			return invalid("request body: want the event as a JSON object")
		}
		return invalid("request body: not valid JSON")
	}
	if raw == nil {
		return invalid("request body: want the event as a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("request body: want one JSON object (the event), found more after it")
	}
	var e Event
	for k, v := range raw {
		var err error
		switch k {
		case "action":
			err = decodeString(v, &e.Action)
		case "crud":
			err = decodeString(v, &e.CRUD)
		case "created":
			err = decodeString(v, &e.Created)
		case "source_ip":
			err = decodeString(v, &e.SourceIP)
		case "description":
			err = decodeString(v, &e.Description)
		case "component":
			err = decodeString(v, &e.Component)
		case "version":
			err = decodeString(v, &e.Version)
		case "external_id":
			err = decodeString(v, &e.ExternalID)
		case "is_failure":
			err = decodeBool(v, &e.IsFailure)
		case "is_anonymous":
			err = decodeBool(v, &e.IsAnonymous)
		case "fields":
			err = decodeStrings(v, &e.Fields)
		case "metadata":
			err = decodeStrings(v, &e.Metadata)
		case "group":
			err = e.Group.decode(v, "id", "name")
		case "actor":
			err = e.Actor.decode(v, "id", "name", "href", "fields")
		case "target":
			err = e.Target.decode(v, "id", "name", "href", "type", "fields")
		default:
			return invalid("%s: unknown attribute of a Retraced event", text.Truncate(k, 64))
		}
		if err != nil {
			return invalid("%s%s", k, err.Error())
		}
	}
	for _, o := range []struct {
		name string
		obj  Object
	}{{"group", e.Group}, {"actor", e.Actor}, {"target", e.Target}} {
		if o.obj.Fields != nil {
			return invalid("%s.fields: not supported: the registry stores no fields of a %s; put them in the event's fields", o.name, o.name)
		}
		if o.obj.Present && o.obj.ID == "" {
			return invalid("%s.id: required when %s is present", o.name, o.name)
		}
	}
	if e.ExternalID != "" {
		return invalid("external_id: not supported: the registry does not store it; put it in fields")
	}
	if e.Metadata != nil {
		return invalid("metadata: not supported: the registry does not store it; put it in fields")
	}
	if e.Created != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.Created); err != nil {
			return invalid("created: want an RFC 3339 time such as 2026-01-02T15:04:05.000Z")
		}
	}
	if !e.Actor.Present {
		// Retraced takes an anonymous event without an actor; the
		// registry's events all name theirs (AppendEvent's rule).
		return invalid("actor.id: required (every event names its actor, an anonymous one too, with is_anonymous)")
	}
	return &e, nil
}

// The decoders' errors continue the attribute's name: ": must be …".

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// decodeString reads a string; null is no value.
func decodeString(v json.RawMessage, dst *string) error {
	if isNull(v) {
		return nil
	}
	return jsonString(v, dst)
}

// jsonString reads the JSON string v into dst. encoding/json turns bytes
// that are not UTF-8, and escapes of lone surrogates, into U+FFFD; that
// would store and hash another text than the one sent, so a U+FFFD that
// the input did not spell (as itself or \ufffd) is refused, as
// AppendEvent refuses the same input.
func jsonString(v json.RawMessage, dst *string) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return errors.New(": must be a string")
	}
	if n := strings.Count(*dst, "\uFFFD"); n > 0 && n > strings.Count(string(v), "\uFFFD")+strings.Count(strings.ToLower(string(v)), `\ufffd`) {
		return errors.New(": must be UTF-8 text (a byte that is not UTF-8, or an escaped lone surrogate, was sent)")
	}
	return nil
}

func decodeBool(v json.RawMessage, dst *bool) error {
	if isNull(v) {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return errors.New(": must be true or false")
	}
	return nil
}

// decodeStrings reads an object of strings; null leaves dst nil (absent),
// {} makes it empty (present), as the hash tells them apart.
func decodeStrings(v json.RawMessage, dst *map[string]string) error {
	if isNull(v) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return errors.New(": must be an object of strings")
	}
	out := make(map[string]string, len(m))
	for k, raw := range m {
		var s string
		if isNull(raw) {
			return fmt.Errorf(".%s: must be a string", text.Truncate(k, 64))
		}
		if err := jsonString(raw, &s); err != nil {
			return fmt.Errorf(".%s%w", text.Truncate(k, 64), err)
		}
		out[k] = s
	}
	*dst = out
	return nil
}

// decode reads a group, actor or target with the given attributes.
func (o *Object) decode(v json.RawMessage, keys ...string) error {
	if isNull(v) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return errors.New(": must be an object")
	}
	o.Present = len(m) > 0
	for k, raw := range m {
		if !slices.Contains(keys, k) {
			return fmt.Errorf(".%s: unknown attribute (this object has %s)", text.Truncate(k, 64), strings.Join(keys, ", "))
		}
		var dst *string
		switch k {
		case "id":
			dst = &o.ID
		case "name":
			dst = &o.Name
		case "href":
			dst = &o.Href
		case "type":
			dst = &o.Type
		case "fields":
			if err := decodeStrings(raw, &o.Fields); err != nil {
				return fmt.Errorf(".fields%w", err)
			}
			continue
		}
		if isNull(raw) {
			return fmt.Errorf(".%s: must be a string", k)
		}
		if err := jsonString(raw, dst); err != nil {
			return fmt.Errorf(".%s%w", k, err)
		}
	}
	return nil
}

// AppendInput is the registry's append of e into tenantID's chain.
func (e *Event) AppendInput(tenantID string) audit.AppendInput {
	return audit.AppendInput{
		TenantID:    tenantID,
		Action:      e.Action,
		CRUD:        e.CRUD,
		Actor:       audit.Actor{ID: e.Actor.ID, Name: e.Actor.Name},
		Target:      audit.Target{ID: e.Target.ID, Name: e.Target.Name, Type: e.Target.Type},
		Description: e.Description,
		Fields:      e.Fields,
		SourceIP:    e.SourceIP,
		IsFailure:   e.IsFailure,
		IsAnonymous: e.IsAnonymous,
	}
}

// HashInput is what Retraced's hash covers of e, as sent.
func (e *Event) HashInput() HashInput {
	return HashInput{
		Action:    e.Action,
		HasTarget: e.Target.Present, TargetID: e.Target.ID,
		HasActor: e.Actor.Present, ActorID: e.Actor.ID,
		HasGroup: e.Group.Present, GroupID: e.Group.ID,
		SourceIP:  e.SourceIP,
		IsFailure: e.IsFailure, IsAnonymous: e.IsAnonymous,
		Fields:     e.Fields,
		ExternalID: e.ExternalID,
		Metadata:   e.Metadata,
	}
}
