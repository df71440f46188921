package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/internal/audit"
)

// maxLine bounds one line of the export (an event is far smaller).
const maxLine = 4 << 20

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// verifyOffline is auditctl verify-offline: it reads the digests and keys
// whole (they are few), then streams the export through
// audit.OfflineVerifier and prints a line per finding.
func verifyOffline(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify-offline", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	events := fs.String("events", "", "the export: GET /v1/audit/export (NDJSON)")
	digests := fs.String("digests", "", "the digests: GET /v1/audit/digests (every page)")
	keys := fs.String("public-keys", "", "the public keys: GET /v1/audit/public-keys (every page)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *events == "" || *digests == "" || *keys == "" {
		return errors.New(usage)
	}
	var ds []*audit.Digest
	if err := readPages(*digests, func() proto.Message { return &v1.ListDigestsResponse{} }, func(m proto.Message) error {
		for _, d := range m.(*v1.ListDigestsResponse).Digests {
			id, err := uuid.Parse(d.Id)
			if err != nil {
				return fmt.Errorf("digest %q: %w", d.Id, err)
			}
			ds = append(ds, &audit.Digest{
				ID: id, GroupID: d.TenantId, FirstSeq: d.FirstSeq, LastSeq: d.LastSeq, HeadHash: d.HeadHash,
				PrevDigestHash: d.PrevDigestHash, DigestHash: d.DigestHash, CreatedAt: d.CreatedAt.AsTime(),
				KeyID: d.KeyId, Signature: d.Signature,
			})
		}
		return nil
	}); err != nil {
		return err
	}
	var ks []audit.PublicKey
	if err := readPages(*keys, func() proto.Message { return &v1.ListPublicKeysResponse{} }, func(m proto.Message) error {
		for _, k := range m.(*v1.ListPublicKeysResponse).Keys {
			pk := audit.PublicKey{KeyID: k.KeyId, PublicKeyPEM: k.PublicKeyPem, NotBefore: k.NotBefore.AsTime()}
			if k.NotAfter != nil {
				t := k.NotAfter.AsTime()
				pk.NotAfter = &t
			}
			ks = append(ks, pk)
		}
		return nil
	}); err != nil {
		return err
	}
	v := audit.NewOfflineVerifier(ds, ks)
	f, err := os.Open(*events)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var streamErr string
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if streamErr != "" {
			return fmt.Errorf("%s line %d: a line after the export's error line", *events, n)
		}
		var probe struct {
			Error *struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return fmt.Errorf("%s line %d: not JSON: %w", *events, n, err)
		}
		if probe.Error != nil {
			streamErr = probe.Error.Code + ": " + probe.Error.Message
			continue
		}
		var e v1.AuditEvent
		if err := unmarshal.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s line %d: not an audit event: %w", *events, n, err)
		}
		v.Event(exportedEvent(&e))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", *events, err)
	}
	rep := v.Finish()
	if streamErr != "" {
		rep.Findings = append(rep.Findings, "incomplete: the export ended with an error ("+streamErr+")")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if rep.OK() {
		fmt.Fprintf(stdout, "ok: tenant %s: %d events (chain_seq %d-%d) verified against %d digests, signed through chain_seq %d\n",
			rep.GroupID, rep.Events, rep.FirstSeq, rep.LastSeq, rep.Digests, rep.SignedThrough)
		return nil
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(stdout, "BROKEN: %s\n", f)
	}
	return fmt.Errorf("%w: %d findings (%s)", errBroken, len(rep.Findings), strings.SplitN(rep.Findings[0], ":", 2)[0])
}

// readPages reads a list's answers from path: one answer, a JSON array of
// answers, or answers one after another (NDJSON).
func readPages(path string, newMsg func() proto.Message, each func(proto.Message) error) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var raws []json.RawMessage
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &raws); err != nil {
			return fmt.Errorf("%s: not a JSON array of pages: %w", path, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var r json.RawMessage
			if err := dec.Decode(&r); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: not JSON: %w", path, err)
			}
			raws = append(raws, r)
		}
	}
	if len(raws) == 0 {
		return fmt.Errorf("%s: empty", path)
	}
	for i, r := range raws {
		m := newMsg()
		if err := unmarshal.Unmarshal(r, m); err != nil {
			return fmt.Errorf("%s: page %d: %w", path, i+1, err)
		}
		if err := each(m); err != nil {
			return fmt.Errorf("%s: page %d: %w", path, i+1, err)
		}
	}
	return nil
}

func exportedEvent(e *v1.AuditEvent) audit.ExportedEvent {
	return audit.ExportedEvent{
		Canonical: audit.Canonical{
			Version: int(e.HashVersion), ID: e.Id, CreatedAt: e.CreatedAt.AsTime(),
			Action: e.Action, CRUD: e.Crud,
			GroupID: e.GetGroup().GetId(), GroupName: e.GetGroup().GetName(),
			ActorID: e.GetActor().GetId(), ActorName: e.GetActor().GetName(), ActorType: e.GetActor().GetType(),
			TargetID: e.GetTarget().GetId(), TargetName: e.GetTarget().GetName(), TargetType: e.GetTarget().GetType(),
			SourceIP: e.SourceIp, Description: e.Description, IsFailure: e.IsFailure, IsAnonymous: e.IsAnonymous,
			Fields: e.Fields, IdempotencyKey: e.IdempotencyKey, ChainSeq: e.ChainSeq,
			AppendedByID: e.GetAppendedBy().GetId(), AppendedByType: e.GetAppendedBy().GetType(), AppendedByTenant: e.GetAppendedBy().GetTenantId(),
		},
		PrevHash: e.PrevHash, Hash: e.Hash,
	}
}
