// Package retraced is the Retraced publisher API's wire format: the event a
// Retraced client publishes (POST /publisher/v1/project/{project_id}/event),
// its mapping onto the registry's audit event, and Retraced's event hash,
// which the official clients recompute to check the server's answer.
package retraced

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf16"
)

// HashInput is what Retraced's hash covers of an event, as the client sent
// it. Target, Actor and Group are their ids, with Has… telling an absent
// (or empty) object from one present; Fields and Metadata nil mean absent
// (JSON null or no key), non-nil (even empty) present.
type HashInput struct {
	Action                 string
	HasTarget, HasActor    bool
	TargetID, ActorID      string
	HasGroup               bool
	GroupID                string
	SourceIP               string
	IsFailure, IsAnonymous bool
	Fields                 map[string]string
	ExternalID             string
	Metadata               map[string]string
}

// Hash is Retraced's hash of an event stored under id: the SHA-256, in
// lower-case hex, of CanonicalString.
func Hash(id string, e HashInput) string {
	sum := sha256.Sum256([]byte(CanonicalString(id, e)))
	return hex.EncodeToString(sum[:])
}

// CanonicalString is the string Retraced hashes (buildHashTarget in
// @retracedhq/retraced's event.ts):
//
//	id:action:target.id:actor.id:group.id:source_ip:failure:anonymous:fields
//
// each of the first six escaped with % → %25 then : → %3A (an absent
// target, actor or group, and an empty source_ip, leave the slot empty);
// failure and anonymous are 1 or 0; fields, when present, are key=value;
// for each key in sorted order (JavaScript's sort: by UTF-16 code units),
// key and value escaped as above and then = → %3D and ; → %3B, with no
// separator after the last; absent fields are a lone ":". A non-empty
// external_id appends ":" and its escaped value, present metadata ":" and
// its entries as fields'.
func CanonicalString(id string, e HashInput) string {
	var b strings.Builder
	slot := func(present bool, v string) {
		if present {
			b.WriteString(passOne(v))
		}
		b.WriteByte(':')
	}
	slot(true, id)
	slot(true, e.Action)
	slot(e.HasTarget, e.TargetID)
	slot(e.HasActor, e.ActorID)
	slot(e.HasGroup, e.GroupID)
	slot(e.SourceIP != "", e.SourceIP)
	b.WriteString(bit(e.IsFailure))
	b.WriteString(bit(e.IsAnonymous))
	if e.Fields == nil {
		b.WriteByte(':')
	} else {
		writeEntries(&b, e.Fields)
	}
	if e.ExternalID != "" {
		b.WriteByte(':')
		b.WriteString(passOne(e.ExternalID))
	}
	if e.Metadata != nil {
		b.WriteByte(':')
		writeEntries(&b, e.Metadata)
	}
	return b.String()
}

func bit(v bool) string {
	if v {
		return "1:"
	}
	return "0:"
}

func writeEntries(b *strings.Builder, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	for _, k := range keys {
		b.WriteString(passTwo(passOne(k)))
		b.WriteByte('=')
		b.WriteString(passTwo(passOne(m[k])))
		b.WriteByte(';')
	}
}

// compareUTF16 orders strings as JavaScript's default sort does: by their
// UTF-16 code units (which differs from Go's byte order for characters
// above U+FFFF against U+E000..U+FFFF).
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

var (
	passOneReplacer = strings.NewReplacer("%", "%25", ":", "%3A")
	passTwoReplacer = strings.NewReplacer("=", "%3D", ";", "%3B")
)

// passOne is the client's encodePassOne: % → %25, then : → %3A (one pass
// of a Replacer does the same, as neither replacement holds a colon).
func passOne(v string) string { return passOneReplacer.Replace(v) }

// passTwo is encodePassTwo: = → %3D, ; → %3B.
func passTwo(v string) string { return passTwoReplacer.Replace(v) }
