package retraced_test

import (
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/retraced"
)

// TestHash: canonical strings written by hand from Retraced's algorithm
// (buildHashTarget in @retracedhq/retraced 0.7.23's event.ts), and their
// SHA-256 computed outside this code (printf '%s' … | sha256sum; the
// client's own computeHash agrees).
func TestHash(t *testing.T) {
	cases := []struct {
		name      string
		id        string
		in        retraced.HashInput
		canonical string
		hash      string
	}{
		{
			name:      "action only: empty slots, absent fields a lone colon",
			id:        "abf053dc4a3042459818833276eec717",
			in:        retraced.HashInput{Action: "user.login"},
			canonical: "abf053dc4a3042459818833276eec717:user.login:::::0:0::",
			hash:      "22ea3274bc903842c36dbeae91ce1b310a92718de5303f376f7acb184de45572",
		},
		{
			name: "every slot, : and % escaped, fields sorted with = and ; escaped",
			id:   "e1",
			in: retraced.HashInput{
				Action: "doc.viewed", HasTarget: true, TargetID: "t:1", HasActor: true, ActorID: "a%b",
				HasGroup: true, GroupID: "g", SourceIP: "10.0.0.1", IsFailure: true,
				Fields: map[string]string{"b": "x=y;z", "a": "1:2%"},
			},
			canonical: "e1:doc.viewed:t%3A1:a%25b:g:10.0.0.1:1:0:a=1%3A2%25;b=x%3Dy%3Bz;",
			hash:      "b627672613dfbecd19fc4895a39da3f036b5f5004cc184af0bb0d53b9340d2c6",
		},
		{
			name:      "empty fields are present: nothing after the anonymous bit",
			id:        "e1",
			in:        retraced.HashInput{Action: "a.b", IsAnonymous: true, Fields: map[string]string{}},
			canonical: "e1:a.b:::::0:1:",
			hash:      "cec56cefe09527bf6328ac878c28530b1af6b2050494c7df3f1e842cf7b49d7a",
		},
		{
			name: "external_id and metadata appended",
			id:   "e2",
			in: retraced.HashInput{Action: "a.b", HasActor: true, ActorID: "u", ExternalID: "x:y",
				Metadata: map[string]string{"k;": "v="}},
			canonical: "e2:a.b::u:::0:0:::x%3Ay:k%3B=v%3D;",
			hash:      "002d0b6b37670593f9a8b82c537f8799366e84c157f848bea227cd133185dc22",
		},
		{
			name:      "escapes in keys, % escaped before : (no double decoding)",
			id:        "e3",
			in:        retraced.HashInput{Action: "a.b", HasActor: true, ActorID: "u", Fields: map[string]string{"=:": "%3A"}},
			canonical: "e3:a.b::u:::0:0:%3D%3A=%253A;",
			hash:      "329c2e123fd9c7d02e502d03d9125e799e133c826d17e3dc550899e720c975c1",
		},
		{
			name:      "keys in JavaScript's order (UTF-16 code units), not UTF-8's",
			id:        "e4",
			in:        retraced.HashInput{Action: "a.b", Fields: map[string]string{"\uff61": "2", "\U0001F600": "1"}},
			canonical: "e4:a.b:::::0:0:\U0001F600=1;\uff61=2;",
			hash:      "d18bede06f4bb3ca2adb2323b67801aea84ebdeb635d469a68f8dda2fa33fa1d",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := retraced.CanonicalString(tc.id, tc.in); got != tc.canonical {
				t.Errorf("CanonicalString = %q, want %q", got, tc.canonical)
			}
			if got := retraced.Hash(tc.id, tc.in); got != tc.hash {
				t.Errorf("Hash = %s, want %s", got, tc.hash)
			}
		})
	}
}

// TestDecodeHashInput: what the hash sees of a decoded body — absent, null
// and {} objects are no object; null fields are absent, {} present.
func TestDecodeHashInput(t *testing.T) {
	cases := []struct {
		body, canonical string
	}{
		{`{"action":"a.b","crud":"c","actor":{"id":"u"}}`, "E:a.b::u:::0:0::"},
		{`{"action":"a.b","crud":"c","actor":{"id":"u"},"target":{},"group":null,"fields":null,"source_ip":""}`, "E:a.b::u:::0:0::"},
		{`{"action":"a.b","crud":"c","actor":{"id":"u"},"fields":{}}`, "E:a.b::u:::0:0:"},
		{`{"action":"a.b","crud":"r","actor":{"id":"u","name":"U","href":"https://x"},"target":{"id":"t","type":"doc"},"group":{"id":"G","name":"Acme"},` +
			`"source_ip":"::1","is_failure":true,"is_anonymous":false,"fields":{"k":"v:%;="},"created":"2026-01-02T03:04:05.678Z","component":"c","version":"v"}`,
			"E:a.b:t:u:G:%3A%3A1:1:0:k=v%3A%25%3B%3D;"},
	}
	for _, tc := range cases {
		e, err := retraced.Decode(strings.NewReader(tc.body))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.body, err)
			continue
		}
		if got := retraced.CanonicalString("E", e.HashInput()); got != tc.canonical {
			t.Errorf("Decode(%s): canonical %q, want %q", tc.body, got, tc.canonical)
		}
	}
}

// TestDecodeRefuses: bad bodies, each with a message naming the attribute.
func TestDecodeRefuses(t *testing.T) {
	cases := []struct{ body, want string }{
		{``, "request body: empty"},
		{`{`, "request body: not valid JSON"},
		{`[]`, "request body: want the event as a JSON object"},
		{`null`, "request body: want the event as a JSON object"},
		{`{"action":"a.b"} {}`, "request body: want one JSON object"},
		{`{"action":1}`, "action: must be a string"},
		{`{"action":"a.b","is_failure":"yes"}`, "is_failure: must be true or false"},
		{`{"action":"a.b","fields":{"k":1}}`, "fields.k: must be a string"},
		{`{"action":"a.b","fields":[]}`, "fields: must be an object of strings"},
		{`{"action":"a.b","actor":"u"}`, "actor: must be an object"},
		{`{"action":"a.b","actor":{"id":"u","type":"user"}}`, "actor.type: unknown attribute"},
		{`{"action":"a.b","actor":{"name":"U"}}`, "actor.id: required when actor is present"},
		{`{"action":"a.b","actor":{"id":""}}`, "actor.id: required when actor is present"},
		{`{"action":"a.b","actor":{"id":null}}`, "actor.id: must be a string"},
		{`{"action":"a.b","actor":{"id":"u"},"target":{"name":"T"}}`, "target.id: required when target is present"},
		{`{"action":"a.b","actor":{"id":"u"},"group":{"name":"G"}}`, "group.id: required when group is present"},
		{`{"action":"a.b","actor":{"id":"u"},"target":{"id":"t","fields":{"a":"b"}}}`, "target.fields: not supported"},
		{`{"action":"a.b","actor":{"id":"u"},"external_id":"x"}`, "external_id: not supported"},
		{`{"action":"a.b","actor":{"id":"u"},"metadata":{}}`, "metadata: not supported"},
		{`{"action":"a.b","actor":{"id":"u"},"created":"yesterday"}`, "created: want an RFC 3339 time"},
		{`{"action":"a.b","is_anonymous":true}`, "actor.id: required"},
		{`{"action":"a.b","actor":{"id":"u"},"tenant_id":"x"}`, "tenant_id: unknown attribute"},
		// Text that encoding/json would quietly turn into U+FFFD.
		{"{\"action\":\"a.b\",\"actor\":{\"id\":\"u\xff\"}}", "actor.id: must be UTF-8 text"},
		{`{"action":"a.b","actor":{"id":"u"},"description":"\ud800"}`, "description: must be UTF-8 text"},
		{"{\"action\":\"a.b\",\"actor\":{\"id\":\"u\"},\"fields\":{\"k\":\"v\xc3\"}}", "fields.k: must be UTF-8 text"},
	}
	for _, tc := range cases {
		_, err := retraced.Decode(strings.NewReader(tc.body))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Decode(%s) = %v, want an error starting %q", tc.body, err, tc.want)
		}
	}
}

// TestDecodeKeepsReplacementCharacter: a U+FFFD the client sent, as itself
// or escaped, is text like any other.
func TestDecodeKeepsReplacementCharacter(t *testing.T) {
	e, err := retraced.Decode(strings.NewReader(`{"action":"a.b","actor":{"id":"u\ufffd"},"description":"d` + "\uFFFD" + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Actor.ID+"|"+e.Description, "u\uFFFD|d\uFFFD"; got != want {
		t.Errorf("actor.id|description = %q, want %q", got, want)
	}
}
