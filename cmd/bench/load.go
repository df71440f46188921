package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- processes ----

type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProcess(ctx context.Context, bin string, args, env []string, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *process) waitHealthy(ctx context.Context, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited:\n%s", p.cmd.Path, log)
		default:
		}
		if res, err := http.Get(u); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s", p.cmd.Path, u)
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS.
func (p *process) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// peak is the process's peak RSS in bytes since the last resetPeak.
func (p *process) peak() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ---- load generation ----

// metricReader is what measure asks of the OTLP receiver.
type metricReader interface {
	next(ctx context.Context, metric string) (lookups, error)
}

// measure checks r's answer, runs r.before, warms up for warmup and
// measures for d (closed loop, or fixed rate when r.rate is set), with the
// peak RSS and, when r.hit names a counter, the cache lookups of the
// measured part (read from exports that began after the warm-up and after
// the run).
func (lg *loadGen) measure(ctx context.Context, r *row, d, warmup time.Duration, m metricReader) error {
	if r.want != "" {
		if err := lg.check(r); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	if r.before != nil {
		if err := r.before(ctx, lg); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	if r.pair != nil {
		return lg.measurePaired(ctx, r, d, warmup, m)
	}
	how := fmt.Sprintf("closed loop, %d connections", lg.conns)
	if r.rate > 0 {
		how = fmt.Sprintf("%d requests/s", r.rate)
	}
	loop := func(d time.Duration) result { return lg.run(ctx, r, d) }
	logf("%s: %v, %s", r.name, d, how)
	if r.during != nil {
		stop := r.during.start(ctx)
		defer func() { logf("%s: %s", r.name, stop()) }()
	}
	loop(warmup) // discarded
	var before lookups
	if r.hit != "" {
		var err error
		if before, err = m.next(ctx, r.hit); err != nil {
			return err
		}
	}
	r.proc.resetPeak()
	r.res = loop(d)
	r.rss = r.proc.peak()
	if r.hit != "" {
		after, err := m.next(ctx, r.hit)
		if err != nil {
			return err
		}
		r.lookups = after.sub(before)
	}
	return ctx.Err()
}

// run runs r for d: closed loop, or fixed rate when r.rate is set.
func (lg *loadGen) run(ctx context.Context, r *row, d time.Duration) result {
	if r.rate > 0 {
		return lg.fixedRate(ctx, r, r.rate, d)
	}
	return lg.closedLoop(ctx, r, d)
}

// pairSlice is how long each slice of a paired measurement runs.
const pairSlice = time.Second

// measurePaired measures r and r.pair in alternating slices of pairSlice,
// d of each in all, in the order ABBA ABBA … (so that neither arm always
// runs first, nor always right after the other), each after its own
// warm-up. The host's drift over the row (other processes, the server's
// once-a-minute writes, CPU frequency) then falls on both arms alike and
// their ratio is a paired comparison. A slice of an arm with a during
// (the churn) runs with it, started before and stopped after each run of
// that arm's consecutive slices. r's peak RSS is the maximum over its
// slices; its cache lookups are read around each run of its slices, so an
// arm on the same server (the churn row's quiet arm) does not count.
func (lg *loadGen) measurePaired(ctx context.Context, r *row, d, warmup time.Duration, m metricReader) error {
	p := r.pair
	if p.want != "" {
		if err := lg.check(p); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	// slicesOf runs n slices of arm a of length each, with its during.
	slicesOf := func(a *row, n int, each time.Duration) []result {
		if a.during != nil {
			stop := a.during.start(ctx)
			defer func() { a.during.notes = append(a.during.notes, stop()) }()
		}
		out := make([]result, 0, n)
		for range n {
			out = append(out, lg.run(ctx, a, each))
		}
		return out
	}
	slices := max(1, int((d+pairSlice-1)/pairSlice))
	logf("%s: %v, paired with %q: %d alternating %v slices each", r.name, d, p.name, slices, pairSlice)
	slicesOf(r, 1, warmup) // discarded
	slicesOf(p, 1, warmup)
	var rs, ps []result
	// Runs of consecutive slices of one arm: A BB AA BB … , the last one
	// cut to what its arm still needs.
	for run := 0; len(rs) < slices || len(ps) < slices; run++ {
		a, have := r, &rs
		if run%2 == 1 {
			a, have = p, &ps
		}
		n := min(2, slices-len(*have))
		if run == 0 {
			n = 1
		}
		if n <= 0 {
			continue
		}
		var before lookups
		if a == r && r.hit != "" {
			var err error
			if before, err = m.next(ctx, r.hit); err != nil {
				return err
			}
		}
		if a == r {
			r.proc.resetPeak()
		}
		*have = append(*have, slicesOf(a, n, pairSlice)...)
		if a == r {
			r.rss = max(r.rss, r.proc.peak())
			if r.hit != "" {
				after, err := m.next(ctx, r.hit)
				if err != nil {
					return err
				}
				l := after.sub(before)
				r.lookups.hits += l.hits
				r.lookups.misses += l.misses
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.slices, p.slices = rs, ps
	r.res, p.res = combine(rs), combine(ps)
	if r.during != nil {
		logf("%s: %s", r.name, strings.Join(r.during.notes, "; "))
	}
	return nil
}

// combine is one result of several slices: their requests, errors and
// latencies, over the sum of their times.
func combine(parts []result) result {
	var out result
	var elapsed time.Duration
	for _, p := range parts {
		out.merge(p)
		elapsed += p.elapsed
	}
	out.finish(elapsed)
	return out
}

type row struct {
	name string
	proc *process
	req  func(worker, i int) (*http.Request, error)
	want string // in the check answer's body
	// hit names the cache counter metric whose hit ratio the row reports.
	hit string
	// during runs alongside the row (the churn).
	during *churner
	// before runs before the warm-up (filling the cache).
	before func(context.Context, *loadGen) error
	// rate > 0 makes the row a fixed-rate run.
	rate int
	// pair, when set, is measured with the row in alternating slices
	// (measurePaired): the row's own baseline (the bare handler, or the
	// same row without churn), to which "vs" compares it.
	pair *row

	res     result
	slices  []result // a paired row's slices, in order
	rss     int64
	lookups lookups
}

type result struct {
	n         int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration // sorted
	began     time.Time       // a fixed-rate run's start
}

// note records one request of a worker: its error, or its latency.
func (r *result) note(errMsg string, latency time.Duration) {
	if errMsg == "" {
		r.latencies = append(r.latencies, latency)
		return
	}
	r.errors++
	if r.firstErr == "" {
		r.firstErr = errMsg
	}
}

// merge adds a worker's tally to r.
func (r *result) merge(w result) {
	r.latencies = append(r.latencies, w.latencies...)
	r.errors += w.errors
	if r.firstErr == "" {
		r.firstErr = w.firstErr
	}
}

// finish closes r after elapsed: the count and the sorted latencies.
func (r *result) finish(elapsed time.Duration) {
	r.elapsed = elapsed
	r.n = len(r.latencies)
	slices.Sort(r.latencies)
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(p*float64(len(r.latencies)-1))]
}

type loadGen struct {
	conns  int
	client *http.Client
}

func newLoadGen(conns int) *loadGen {
	tr := &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &loadGen{conns: conns, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// check sends one request and checks the answer.
func (lg *loadGen) check(r *row) error {
	req, err := r.req(0, 0)
	if err != nil {
		return err
	}
	res, err := lg.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// protojson varies its whitespace between builds on purpose: compare
	// compacted JSON.
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		body = compact.Bytes()
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(r.want)) {
		return fmt.Errorf("check: %d %.300s (want %s)", res.StatusCode, body, r.want)
	}
	return nil
}

// do sends one request and reads the answer; "" means 200.
func (lg *loadGen) do(r *row, worker, i int) string {
	req, err := r.req(worker, i)
	if err != nil {
		return err.Error()
	}
	res, err := lg.client.Do(req)
	if err != nil {
		return err.Error()
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Sprintf("%d %.200s", res.StatusCode, body)
	}
	return ""
}

// closedLoop runs lg.conns workers, each sending its next request as soon
// as the previous one is answered, for d.
func (lg *loadGen) closedLoop(ctx context.Context, r *row, d time.Duration) result {
	var (
		mu  sync.Mutex
		out result
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for w := range lg.conns {
		wg.Go(func() {
			tally := result{latencies: make([]time.Duration, 0, 4096)}
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				if !t.Before(end) {
					break
				}
				e := lg.do(r, w, i)
				tally.note(e, time.Since(t))
			}
			mu.Lock()
			out.merge(tally)
			mu.Unlock()
		})
	}
	wg.Wait()
	out.finish(time.Since(start))
	return out
}

// alternate sends reqs' requests in turn from one connection for d, each
// counted in its own result.
func (lg *loadGen) alternate(ctx context.Context, d time.Duration, reqs ...func(worker, i int) (*http.Request, error)) []result {
	out := make([]result, len(reqs))
	start := time.Now()
	for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
		t := time.Now()
		e := lg.do(&row{req: reqs[i%len(reqs)]}, 0, i)
		out[i%len(reqs)].note(e, time.Since(t))
	}
	for i := range out {
		out[i].finish(time.Since(start))
	}
	return out
}

// sweep sends req(i) for every i below n once, over lg.conns connections.
func (lg *loadGen) sweep(ctx context.Context, n int, req func(i int) (*http.Request, error)) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	r := &row{req: func(_, i int) (*http.Request, error) { return req(i) }}
	for w := range lg.conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if e := lg.do(r, w, i); e != "" {
					first.CompareAndSwap(nil, e)
				}
			}
		})
	}
	wg.Wait()
	if e, ok := first.Load().(string); ok {
		return errors.New(e)
	}
	return ctx.Err()
}

// apiClient sends JSON requests with a bearer token.
type apiClient struct {
	client *http.Client
	token  string
}

func newAPIClient(token string) *apiClient {
	return &apiClient{client: &http.Client{Timeout: 30 * time.Second}, token: token}
}

// call sends a JSON request and decodes a 200 answer into out (if non-nil).
func (a *apiClient) call(method, u, body string, out any) error {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, u, res.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// fixedRate schedules rate requests/s for d, served by lg.conns workers
// (one keep-alive connection each); each latency counts from the request's
// scheduled start, so a server falling behind shows in the p99.
func (lg *loadGen) fixedRate(ctx context.Context, r *row, rate int, d time.Duration) result {
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	jobs := make(chan int, total)
	var (
		mu  sync.Mutex
		out result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := range lg.conns {
		wg.Go(func() {
			tally := result{latencies: make([]time.Duration, 0, total/lg.conns+16)}
			for i := range jobs {
				e := lg.do(r, w, i)
				tally.note(e, time.Since(start.Add(time.Duration(i)*interval)))
			}
			mu.Lock()
			out.merge(tally)
			mu.Unlock()
		})
	}
	for sent := 0; sent < total && ctx.Err() == nil; {
		due := min(total, int(time.Since(start)/interval)+1)
		for ; sent < due; sent++ {
			jobs <- sent
		}
		time.Sleep(interval / 2)
	}
	close(jobs)
	wg.Wait()
	out.finish(time.Since(start))
	out.began = start
	return out
}

// ---- formatting ----

func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string {
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
