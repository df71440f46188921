package audit

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/platform/tenant-registry/internal/evidence"
)

// ExportedEvent is an event as the export answers it: its canonical form
// and the stored hashes.
type ExportedEvent struct {
	Canonical
	PrevHash, Hash string
}

// PublicKey is a signing key as ListPublicKeys answers it.
type PublicKey struct {
	KeyID, PublicKeyPEM string
	NotBefore           time.Time
	NotAfter            *time.Time
}

// OfflineReport is what VerifyOffline found. OK when Findings is empty.
type OfflineReport struct {
	GroupID string
	// Events is how many events were read; FirstSeq and LastSeq the chain
	// positions of the first and last.
	Events            int64
	FirstSeq, LastSeq int64
	Digests           int
	// SignedThrough is the highest chain_seq whose hash a digest signed and
	// the events reproduce.
	SignedThrough int64
	// Findings are the reasons the evidence does not hold, one line each.
	Findings []string
	// Notes are true statements that are no failure (events retention
	// deleted, events not signed yet).
	Notes []string
}

// OK reports whether everything holds.
func (r *OfflineReport) OK() bool { return len(r.Findings) == 0 }

// OfflineVerifier checks an export of a tenant's chain against its signed
// digests and the public keys, without the database: construct it with the
// digests and keys (checked at once), feed it the events in the export's
// order with Event, then Finish. Holding only the digests, it reads an
// export of any length.
//
// It reports the first event that breaks the chain — edited (its content
// does not hash to its hash), inserted (a chain_seq repeated, or a prev_hash
// that is not the previous event's hash), deleted (chain_seq skips), or
// reordered (a skipped chain_seq turns up later) — and, where the chain is
// consistent, a signed head it does not reproduce (the chain was rewritten
// with recomputed hashes after that digest); a truncated tail (events a
// digest covers missing at the end); digests signed by an unknown key, with
// a bad signature, outside their key's validity, or not linked to the
// previous digest.
type OfflineVerifier struct {
	rep     OfflineReport
	digests []*Digest
	// signed are the digests whose signature verified, in chain order.
	signed []*Digest
	byLast map[int64]*Digest
	group  string

	started, broken bool
	next            int64
	prevHash        string
	// gap: chain_seq gapFrom..gapTo were missing before gapEvent.
	gapFrom, gapTo int64
	gapEvent       string
}

// NewOfflineVerifier checks the digests (their signatures under keys, their
// linkage) and gets ready for the events.
func NewOfflineVerifier(digests []*Digest, keys []PublicKey) *OfflineVerifier {
	v := &OfflineVerifier{byLast: map[int64]*Digest{}}
	find := func(format string, args ...any) {
		v.rep.Findings = append(v.rep.Findings, fmt.Sprintf(format, args...))
	}
	known := map[string]PublicKey{}
	parsed := map[string]evidence.PublicKey{}
	for _, k := range keys {
		pk, err := evidence.ParsePublicKeyPEM(k.PublicKeyPEM)
		if err != nil {
			find("public key %s: %v", k.KeyID, err)
			continue
		}
		if pk.ID != k.KeyID {
			find("public key %s: its key_id is not the SHA-256 of its key (%s)", k.KeyID, pk.ID)
			continue
		}
		known[k.KeyID], parsed[k.KeyID] = k, pk
	}
	v.digests = slices.Clone(digests)
	slices.SortStableFunc(v.digests, func(a, b *Digest) int {
		return cmp.Or(cmp.Compare(a.FirstSeq, b.FirstSeq), cmp.Compare(a.LastSeq, b.LastSeq))
	})
	v.rep.Digests = len(v.digests)
	var prev *Digest
	for _, d := range v.digests {
		name := fmt.Sprintf("digest %s (chain_seq %d-%d)", d.ID, d.FirstSeq, d.LastSeq)
		if v.group == "" {
			v.group = d.GroupID
		} else if d.GroupID != v.group {
			find("%s: belongs to tenant %s, not %s", name, d.GroupID, v.group)
			continue
		}
		ev := d.Evidence()
		k, ok := known[d.KeyID]
		valid := false
		switch {
		case !ok:
			find("%s: signed by unknown key %s (not among the public keys)", name, d.KeyID)
		case !ev.Verify(parsed[d.KeyID].Key, d.Signature):
			find("%s: the signature does not verify under key %s (the digest was altered or forged)", name, d.KeyID)
		case d.CreatedAt.Before(k.NotBefore) || (k.NotAfter != nil && d.CreatedAt.After(*k.NotAfter)):
			find("%s: signed at %s, outside key %s's validity", name, d.CreatedAt.UTC().Format(time.RFC3339Nano), d.KeyID)
		default:
			valid = true
		}
		if d.DigestHash != ev.Hash() {
			find("%s: digest_hash is not the hash of its signed encoding", name)
		}
		switch {
		case prev == nil && (d.FirstSeq != 1 || d.PrevDigestHash != ""):
			find("%s: the first digest does not start the chain (digests before it are missing)", name)
		case prev != nil && (d.FirstSeq != prev.LastSeq+1 || d.PrevDigestHash != prev.Evidence().Hash()):
			find("%s: does not follow digest %s (chain_seq %d-%d): a digest was removed, inserted or replaced", name, prev.ID, prev.FirstSeq, prev.LastSeq)
		}
		if valid {
			// Only what a known key signed vouches for the events.
			v.byLast[d.LastSeq] = d
			v.signed = append(v.signed, d)
		}
		prev = d
	}
	v.rep.GroupID = v.group
	return v
}

func (v *OfflineVerifier) find(format string, args ...any) {
	v.rep.Findings = append(v.rep.Findings, fmt.Sprintf(format, args...))
}

// Event checks the next event of the export.
func (v *OfflineVerifier) Event(e ExportedEvent) {
	seq := e.ChainSeq
	v.rep.Events++
	if v.rep.Events == 1 {
		v.rep.FirstSeq = seq
	}
	v.rep.LastSeq = max(v.rep.LastSeq, seq)
	if v.group == "" {
		v.group, v.rep.GroupID = e.GroupID, e.GroupID
	}
	if v.broken {
		if v.gapEvent != "" && seq >= v.gapFrom && seq <= v.gapTo {
			v.find("reordered: event %s (chain_seq %d) comes after event %s (chain_seq %d)", e.ID, seq, v.gapEvent, v.gapTo+1)
			v.gapEvent = ""
		}
		return
	}
	name := fmt.Sprintf("event %s (chain_seq %d)", e.ID, seq)
	if e.GroupID != v.group {
		v.find("inserted: %s belongs to tenant %s, not %s", name, e.GroupID, v.group)
		v.broken = true
		return
	}
	if !v.started {
		v.started = true
		v.next, v.prevHash = seq, e.PrevHash
		switch {
		case seq < 1:
			v.find("edited: %s: chain_seq must be 1 or more", name)
			v.broken = true
			return
		case seq == 1 && e.PrevHash != "":
			v.find("edited: %s: the chain's first event has a prev_hash", name)
			v.broken = true
			return
		case seq > 1:
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain_seq %s not in the export (deleted by retention, or outside its time range); the chain is checked from %s's prev_hash", seqRange(1, seq-1), name))
			if d := v.byLast[seq-1]; d != nil {
				if d.HeadHash != e.PrevHash {
					v.find("rewritten: %s: its prev_hash %s is not the head %s signed by digest %s (chain_seq %d)", name, e.PrevHash, d.HeadHash, d.ID, d.LastSeq)
					v.broken = true
					return
				}
				v.rep.SignedThrough = seq - 1
			}
		}
	}
	switch {
	case seq < v.next-1:
		v.find("reordered: %s comes after chain_seq %d", name, v.next-1)
	case seq < v.next:
		v.find("inserted: %s repeats the chain_seq of the event before it", name)
	case seq > v.next:
		// A deletion, unless the missing events turn up later (a reorder).
		v.gapFrom, v.gapTo, v.gapEvent = v.next, seq-1, e.ID
	case e.PrevHash != v.prevHash:
		v.find("inserted: %s: its prev_hash is not the hash of the event before it (an event was inserted or replaced)", name)
	case e.Canonical.Hash(v.prevHash) != e.Hash:
		v.find("edited: %s: its content does not hash to its hash (the event was changed)", name)
	default:
		if d := v.byLast[seq]; d != nil {
			if d.HeadHash != e.Hash {
				v.find("rewritten: %s hashes to %s, but digest %s signed the head %s (the chain was rewritten after that digest)", name, e.Hash, d.ID, d.HeadHash)
				v.broken = true
				return
			}
			v.rep.SignedThrough = seq
		}
		v.next, v.prevHash = seq+1, e.Hash
		return
	}
	v.broken = true
}

// Finish reports what was found.
func (v *OfflineVerifier) Finish() OfflineReport {
	if v.gapEvent != "" {
		v.find("deleted: chain_seq %s missing before event %s (chain_seq %d)", seqRange(v.gapFrom, v.gapTo), v.gapEvent, v.gapTo+1)
		v.gapEvent = ""
	}
	if n := len(v.signed); n > 0 {
		last := v.signed[n-1]
		switch {
		case v.rep.Events == 0:
			v.find("truncated: the export holds no events, but digest %s covers chain_seq %d-%d", last.ID, last.FirstSeq, last.LastSeq)
		case v.rep.LastSeq < last.LastSeq:
			v.find("truncated: chain_seq %s, covered by digest %s, missing at the end of the export", seqRange(v.rep.LastSeq+1, last.LastSeq), last.ID)
		}
	}
	if v.rep.OK() && v.rep.LastSeq > v.rep.SignedThrough && v.rep.Events > 0 {
		from := max(v.rep.SignedThrough+1, v.rep.FirstSeq)
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain_seq %s not signed by a digest yet (the chain holds together; the next digest covers it)", seqRange(from, v.rep.LastSeq)))
	}
	return v.rep
}

// seqRange is "5" or "5-9".
func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d-%d", from, to)
}
