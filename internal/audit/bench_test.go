package audit_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/storetest"
)

// BenchmarkListEventsPage compares ListEvents' first page with deep pages
// on PostgreSQL holding BENCH_AUDIT_ROWS events of one tenant (plus a tenth
// as many of another), inserted by SQL. It is opt-in, the insert takes a
// while:
//
//	BENCH_AUDIT_ROWS=1000000 go test -run '^$' -bench ListEventsPage ./internal/audit/
//
// Pages are 500 events (the maximum); page 1000 starts at event 499,501 and
// the last page is the millionth. "service" runs audit.Service.List (ent,
// cursor, scanning 500 rows); "bare" runs the same keyset SQL through
// database/sql and discards the rows: the baseline of the same run. The
// sub-benchmark "ratio" reports deep/first latency ratios (of medians).
func BenchmarkListEventsPage(b *testing.B) {
	n, err := strconv.ParseInt(os.Getenv("BENCH_AUDIT_ROWS"), 10, 64)
	if err != nil || n < 2000 {
		b.Skip("set BENCH_AUDIT_ROWS (e.g. 1000000) to run: it inserts that many events")
	}
	st := storetest.Postgres(b)
	f := newFixture(b, st, 0)
	a, other := f.tenant(b, "acme"), f.tenant(b, "globex")
	start := time.Now()
	bulkInsert(b, st.DB, other, n/10, 0, t0)
	bulkInsert(b, st.DB, a, n, 0, t0)
	b.Logf("inserted %d + %d events in %v", n, n/10, time.Since(start).Round(time.Millisecond))

	// Walk every page once, keeping the cursors of the pages to measure.
	const size = 500
	pages := map[int]string{1: ""}
	last := int((n + size - 1) / size)
	deep := min(1000, last)
	in := audit.ListInput{TenantID: a, PageSize: size}
	start = time.Now()
	for page := 1; page < last; page++ {
		_, next, err := f.svc.List(admin, in)
		if err != nil {
			b.Fatal(err)
		}
		in.Cursor = next
		if page+1 == deep || page+1 == last {
			pages[page+1] = next
		}
	}
	b.Logf("walked %d pages of %d in %v", last, size, time.Since(start).Round(time.Millisecond))
	b.Log(explainList(b, st, audit.ListInput{TenantID: a, PageSize: size, Cursor: pages[deep]}))

	ctx := storetest.SystemContext()
	list := func(page int) func() error {
		return func() error {
			rows, _, err := f.svc.List(admin, audit.ListInput{TenantID: a, PageSize: size, Cursor: pages[page]})
			if err == nil && len(rows) == 0 {
				err = fmt.Errorf("page %d is empty", page)
			}
			return err
		}
	}
	// bare: the same keyset query by hand.
	var pos = map[int][2]any{}
	for page, c := range pages {
		if c == "" {
			continue
		}
		rows, _, err := f.svc.List(admin, audit.ListInput{TenantID: a, PageSize: 1, Cursor: c})
		if err != nil {
			b.Fatal(err)
		}
		// The position just before the page's first row, i.e. the cursor's.
		pos[page] = [2]any{rows[0].CreatedAt, rows[0].ID}
	}
	bare := func(page int) func() error {
		return func() error {
			q := `SELECT * FROM audit_log WHERE group_id = $1 ORDER BY created_at DESC, id DESC LIMIT 501`
			args := []any{a}
			if p, ok := pos[page]; ok {
				q = `SELECT * FROM audit_log WHERE group_id = $1 AND (created_at, id) <= ($2, $3) ORDER BY created_at DESC, id DESC LIMIT 501`
				args = append(args, p[0], p[1])
			}
			rows, err := st.DB.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			rows.Close()
			return rows.Err()
		}
	}
	type sub struct {
		name string
		fn   func() error
	}
	subs := []sub{
		{"service/page=1", list(1)}, {fmt.Sprintf("service/page=%d", deep), list(deep)}, {fmt.Sprintf("service/page=%d(last)", last), list(last)},
		{"bare/page=1", bare(1)}, {fmt.Sprintf("bare/page=%d", deep), bare(deep)}, {fmt.Sprintf("bare/page=%d(last)", last), bare(last)},
	}
	for _, s := range subs {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				if err := s.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The ratios, from medians of 101 runs each (less noisy than the
	// sub-benchmarks' means on a busy machine), as metrics of "ratio".
	median := func(fn func() error) time.Duration {
		var d []time.Duration
		for range 101 {
			t := time.Now()
			if err := fn(); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	var ratios []float64
	b.Run("ratio", func(b *testing.B) {
		if ratios == nil {
			for _, mk := range []func(int) func() error{list, bare} {
				p1, pd, pl := median(mk(1)), median(mk(deep)), median(mk(last))
				ratios = append(ratios, float64(pd)/float64(p1), float64(pl)/float64(p1))
			}
		}
		for b.Loop() {
		}
		b.ReportMetric(ratios[0], fmt.Sprintf("service-page%d/page1", deep))
		b.ReportMetric(ratios[1], "service-last/page1")
		b.ReportMetric(ratios[2], fmt.Sprintf("bare-page%d/page1", deep))
		b.ReportMetric(ratios[3], "bare-last/page1")
	})
}

// BenchmarkAppend measures Append throughput on PostgreSQL: serial, and
// in parallel into one tenant (appends of one chain queue on its lock) and
// into 16 tenants. "bare" inserts the same row through ent without the
// chain (no lock, no head read, no hash): the baseline of the same run.
func BenchmarkAppend(b *testing.B) {
	st := storetest.Postgres(b)
	f := newFixture(b, st, 0)
	var tenants []string
	for i := range 16 {
		tenants = append(tenants, f.tenant(b, fmt.Sprintf("bench-%02d", i)))
	}
	in := validInput(tenants[0])
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.svc.Append(admin, in); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("parallel/one-tenant", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.svc.Append(admin, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("parallel/16-tenants", func(b *testing.B) {
		b.SetParallelism(4)
		var next = make(chan int, 1)
		next <- 0
		b.RunParallel(func(pb *testing.PB) {
			i := <-next
			next <- i + 1
			x := validInput(tenants[i%len(tenants)])
			for pb.Next() {
				if _, err := f.svc.Append(admin, x); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("bare/serial", func(b *testing.B) {
		ctx := storetest.SystemContext()
		for b.Loop() {
			if err := st.Client.AuditLog.Create().SetGroupID(tenants[1]).SetAction(in.Action).SetCrud(in.CRUD).
				SetActorID(in.Actor.ID).SetActorName(in.Actor.Name).SetActorType("user").SetTargetID(in.Target.ID).
				SetTargetName(in.Target.Name).SetTargetType(in.Target.Type).SetDescription(in.Description).
				SetFields(in.Fields).SetSourceIP(in.SourceIP).Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	if res, err := f.svc.VerifyChain(admin, tenants[0]); err != nil || !res.OK {
		b.Errorf("chain after the benchmark: %+v, %v", res, err)
	}
}
