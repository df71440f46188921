// Command auditctl checks the audit log from outside the service.
//
//	auditctl verify TENANT_ID   walk the tenant's hash chain (from its
//	                            retention checkpoint, if any) and report the
//	                            first broken link; TENANT_ID in any case.
//	                            An empty chain says so ("no events")
//
//	auditctl verify-offline --events EXPORT.ndjson --digests DIGESTS.json --public-keys KEYS.json
//	                            check an export against the signed digests
//	                            and the public keys, without a database or
//	                            the service: the files are what
//	                            GET /v1/audit/export, GET /v1/audit/digests
//	                            and GET /v1/audit/public-keys answer (a
//	                            list's pages as one answer, a JSON array of
//	                            answers, or one answer per line)
//
// Environment (verify): DATABASE_URL (PostgreSQL, migrated to this binary's
// version). Exit status: 0 when the chain (and its evidence) verifies, 1
// when it is broken, 2 on a usage, file or connection error.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
)

const usage = "usage: auditctl verify TENANT_ID   (DATABASE_URL names the database)\n" +
	"       auditctl verify-offline --events EXPORT.ndjson --digests DIGESTS.json --public-keys KEYS.json"

// errBroken is returned when a chain does not verify.
var errBroken = errors.New("audit chain broken")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	switch {
	case errors.Is(err, errBroken):
		fmt.Fprintln(os.Stderr, "auditctl:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "auditctl:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "verify-offline" {
		return verifyOffline(args[1:], stdout)
	}
	if len(args) != 2 || args[0] != "verify" {
		return errors.New(usage)
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL: required")
	}
	st, err := store.Open(ctx, url, store.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := newAuditService(st)
	if err != nil {
		return err
	}
	// The command acts as the system: it may read every tenant's chain.
	ctx = principal.With(ctx, principal.System)
	res, err := svc.VerifyChain(ctx, args[1])
	if err != nil {
		return fmt.Errorf("verify %s: %w", args[1], err)
	}
	from := "the beginning"
	if res.CheckpointSeq > 0 {
		from = fmt.Sprintf("the retention checkpoint at chain_seq %d", res.CheckpointSeq)
	}
	switch {
	case res.OK && res.Empty:
		fmt.Fprintf(stdout, "ok: tenant %s: no events to verify (the chain is empty from %s)\n", res.TenantID, from)
		return nil
	case res.OK:
		fmt.Fprintf(stdout, "ok: tenant %s: %d events verified from %s\n", res.TenantID, res.EventsChecked, from)
		return nil
	}
	fmt.Fprintf(stdout, "BROKEN: tenant %s: event %s: %s (%d events verified from %s before it)\n",
		res.TenantID, res.FirstBrokenEventID, res.Reason, res.EventsChecked, from)
	return fmt.Errorf("%w at event %s", errBroken, res.FirstBrokenEventID)
}

// newAuditService is the audit service over st, for reading: its pager's
// key is random, as the command hands out no cursors.
func newAuditService(st *store.Store) (*audit.Service, error) {
	key := make([]byte, cursor.MinSecret)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	pager, err := cursor.NewPager(key)
	if err != nil {
		return nil, err
	}
	rec, err := audit.NewRecorder(audit.RecorderDeps{Clock: clock.System, Postgres: st.Postgres()})
	if err != nil {
		return nil, err
	}
	return audit.NewService(audit.Deps{Client: st.Client, Recorder: rec, Clock: clock.System, Pager: pager})
}
