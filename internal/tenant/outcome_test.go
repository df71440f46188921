package tenant_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// provisionFunc is a Provisioner whose behaviour each test scripts.
type provisionFunc func(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error)

func (f provisionFunc) Provision(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
	return f(ctx, req)
}

func ok(req keycloak.ProvisionRequest) keycloak.ProvisionResult {
	return keycloak.ProvisionResult{OrgID: "org-" + req.Slug}
}

// TestFencedLease: worker A's attempt outlives its lease and worker B takes
// the job over. A's late failure must not overwrite B's result — whether B
// already finished or is still in Keycloak (then A must not clear B's
// lease either) — neither the state, the error, the lease nor the events.
func TestFencedLease(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bInFlight bool
	}{
		{"B finished first", false},
		{"B still in Keycloak", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := storetest.SystemContext()
			st := storetest.Postgres(t)
			clock := storetest.NewClock(time.Now())
			inA, releaseA := make(chan struct{}), make(chan struct{})
			inB, releaseB := make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			script := provisionFunc(func(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
				switch calls.Add(1) {
				case 1: // A
					close(inA)
					<-releaseA
					return keycloak.ProvisionResult{}, errors.New("keycloak: 503 from A's long-gone call")
				default: // B
					close(inB)
					<-releaseB
					return ok(req), nil
				}
			})
			a := newServiceWith(t, st, clock, script)
			b := newServiceWith(t, st, clock, script)

			created := make(chan *tenant.Tenant, 1)
			go func() {
				tn, err := a.Create(ctx, tenant.CreateInput{Slug: "fenced", Name: "Fenced", AdminEmail: "it@fenced.example", AdminName: "IT"})
				if err != nil {
					t.Errorf("create: %v", err)
				}
				created <- tn
			}()
			<-inA
			// A's lease runs out (by the database's clock) while A is in Keycloak.
			if _, err := st.DB.ExecContext(ctx, `UPDATE outbox SET locked_until = now() - interval '1 second'`); err != nil {
				t.Fatal(err)
			}
			bDone := make(chan error, 1)
			go func() {
				n, err := b.ProcessDue(ctx)
				if err == nil && n != 1 {
					err = errors.New("B did not take the job over")
				}
				bDone <- err
			}()
			<-inB
			if !tc.bInFlight {
				close(releaseB)
				if err := <-bDone; err != nil {
					t.Fatal(err)
				}
			}
			close(releaseA)
			tn := <-created
			if tn == nil {
				t.FailNow()
			}
			if tc.bInFlight {
				job, err := st.Client.Outbox.Query().Where(outbox.TenantID(tn.ID)).Only(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if job.LockedUntil == nil || job.LeaseToken == nil || job.LastError != "" {
					t.Errorf("B's lease after A's late failure: locked %v token %v error %q; want B's lease untouched", job.LockedUntil, job.LeaseToken, job.LastError)
				}
				close(releaseB)
				if err := <-bDone; err != nil {
					t.Fatal(err)
				}
			}

			got, err := a.Get(ctx, tn.ID.String())
			if err != nil {
				t.Fatal(err)
			}
			if got.ProvisioningState != tenant.ProvisioningProvisioned {
				t.Errorf("state %q, want B's provisioned", got.ProvisioningState)
			}
			job, err := st.Client.Outbox.Query().Where(outbox.TenantID(tn.ID)).Only(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if job.DoneAt == nil || job.LastError != "" || job.LockedUntil != nil || job.LeaseToken != nil {
				t.Errorf("job: done %v, error %q, lease %v/%v; want B's outcome", job.DoneAt, job.LastError, job.LockedUntil, job.LeaseToken)
			}
			if _, ok := job.Payload["admin_email"]; ok {
				t.Errorf("the admin's email is still in the done job's payload: %v", job.Payload)
			}
			wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provisioned")
		})
	}
}

// TestOutcomeRecordedAfterRequestEnds: the request ends (client gone)
// while Keycloak is being called; the outcome is still recorded, and the
// lease is not left to run out.
func TestOutcomeRecordedAfterRequestEnds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		reqCtx, endRequest := context.WithCancel(storetest.SystemContext())
		slow := provisionFunc(func(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
			endRequest()
			time.Sleep(50 * time.Millisecond) // Keycloak answers after the client left
			if ctx.Err() != nil {
				return keycloak.ProvisionResult{}, ctx.Err()
			}
			return ok(req), nil
		})
		svc := newServiceWith(t, st, storetest.NewClock(time.Now()), slow)
		_, _ = svc.Create(reqCtx, tenant.CreateInput{Slug: "gone", Name: "Gone"})
		ctx := storetest.SystemContext()
		tn, err := svc.GetBySlug(ctx, "gone")
		if err != nil {
			t.Fatal(err)
		}
		if tn.ProvisioningState != tenant.ProvisioningProvisioned {
			t.Errorf("state %q after the request ended mid-attempt, want provisioned", tn.ProvisioningState)
		}
		wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provisioned")
	})
}

// TestAttemptsFitTheRPCDeadline: with Keycloak hanging, CreateTenant and
// RetryProvisioning answer before their deadline, with the failure
// recorded.
func TestAttemptsFitTheRPCDeadline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		hang := provisionFunc(func(ctx context.Context, _ keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
			<-ctx.Done()
			return keycloak.ProvisionResult{}, ctx.Err()
		})
		svc := newServiceWith(t, st, storetest.NewClock(time.Now()), hang)
		const deadline = 3 * time.Second // the RPC's (RPC_TIMEOUT in production)

		ctx, cancel := context.WithTimeout(storetest.SystemContext(), deadline)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "hanging", Name: "Hanging"})
		if err != nil || ctx.Err() != nil {
			t.Fatalf("create with a hanging Keycloak: %v (context: %v), want an answer within the deadline", err, ctx.Err())
		}
		cancel()
		if tn.ProvisioningState != tenant.ProvisioningFailed {
			t.Errorf("state %q, want failed (recorded before the answer)", tn.ProvisioningState)
		}

		ctx, cancel = context.WithTimeout(storetest.SystemContext(), deadline)
		defer cancel()
		got, err := svc.RetryProvisioning(ctx, tn.ID.String())
		if err != nil || ctx.Err() != nil {
			t.Fatalf("RetryProvisioning with a hanging Keycloak: %v (context: %v), want an answer within the deadline", err, ctx.Err())
		}
		if got.ProvisioningState != tenant.ProvisioningFailed {
			t.Errorf("state %q after the retry, want failed", got.ProvisioningState)
		}
		wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provision_failed,keycloak.provision_failed")
	})
}

// TestMultiByteErrorRecorded: a Keycloak error text longer than the stored
// limit, in multi-byte characters, is cut on a character boundary and
// the store accepts it (PostgreSQL refuses split characters): the failure
// is recorded.
func TestMultiByteErrorRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		msg := "keycloak: " + strings.Repeat("é😀ü", 400) // 3600 bytes, no byte boundary at 1000 or 2000
		failing := provisionFunc(func(context.Context, keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
			return keycloak.ProvisionResult{}, errors.New(msg)
		})
		svc := newServiceWith(t, st, storetest.NewClock(time.Now()), failing)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "unicode", Name: "Unicode"})
		if err != nil {
			t.Fatal(err)
		}
		job, err := st.Client.Outbox.Query().Where(outbox.TenantID(tn.ID)).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if job.LastError == "" || !utf8.ValidString(job.LastError) || len(job.LastError) > 2000 || !strings.HasPrefix(msg, strings.TrimSuffix(job.LastError, "…")) {
			t.Errorf("last_error = %d bytes %q…, want the error cut on a character boundary", len(job.LastError), job.LastError[:min(40, len(job.LastError))])
		}
		wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provision_failed")
	})
}
