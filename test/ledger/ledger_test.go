// Package ledger_test proves the record store's promise that no record is
// lost, end to end: `image-swapper serve` runs as a separate process
// (--no-kube-api, with a target registry in the test process holding the
// swapped images), the test posts AdmissionReviews to /mutate and /validate
// over TLS and HTTP/2 at a fixed rate, each with a uid of its own, and counts
// the requests that were answered. `image-swapper audit -o json` must then
// list, for each answered request, one record per image of its Pod (five),
// under its uid and endpoint, and nothing else.
//
// The tests need only the binary (built from this module) and, for
// PostgreSQL, initdb and pg_ctl (storetest skips without them, and fails
// under CI=true).
package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// rate is the requests a second of the tests that count exactly: enough
// that SIGTERM and outages fall among requests in flight, modest enough for
// two cores shared with the race detector.
const rate = 300

// defaultMaxQueue is the writer's queue bound in serve
// (store.WriterOptions.MaxQueue's default; serve has no setting for it).
const defaultMaxQueue = 100_000

// TestSIGTERMAndRestartKeepEveryAnsweredAdmission: serve under load gets
// SIGTERM while requests keep coming; what it answered (during its shutdown
// delay and drain included) is in the ledger, and a restarted serve adds to
// it. audit lists exactly podImages records for each answered request.
func TestSIGTERMAndRestartKeepEveryAnsweredAdmission(t *testing.T) {
	f := newFixture(t, sqliteStore(t.TempDir()))
	g := newLoadgen(t, f)

	// underLoadThenSIGTERM runs load against s, sends SIGTERM after busy
	// while the load goes on, and ends the load a little after s exited,
	// so that the last requests find no server.
	underLoadThenSIGTERM := func(s *server, run uint32, busy time.Duration) (res *loadResult, sigterm, exited time.Time) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		wait := background(func() *loadResult { return g.run(ctx, s, rate, run) })
		time.Sleep(busy)
		sigterm = time.Now()
		s.stop(t)
		exited = time.Now()
		time.Sleep(300 * time.Millisecond)
		cancel()
		res = wait()
		t.Logf("run %d: %d requests sent, %d answered (%d after SIGTERM), %d failed (first: %v); SIGTERM to exit %s",
			run, res.sent, len(res.answered), res.answeredBetween(sigterm, exited), len(res.failures), res.firstErr, exited.Sub(sigterm).Round(time.Millisecond))
		if n := res.failedBefore(sigterm); n > 0 {
			t.Fatalf("run %d: %d requests failed before SIGTERM (first: %v)", run, n, res.firstErr)
		}
		// The test means something only if SIGTERM came under load, and
		// if some requests went unanswered, so that "answered" is not
		// simply "sent".
		if res.answeredBetween(sigterm, exited) == 0 {
			t.Fatalf("run %d: no request was answered between SIGTERM and exit; the shutdown was not under load", run)
		}
		if len(res.failures) == 0 {
			t.Fatalf("run %d: every request was answered, though requests went on after serve exited", run)
		}
		return res, sigterm, exited
	}

	// --shutdown-delay 1s: serve keeps answering, unready, for a second
	// after SIGTERM, as it does while endpoints drop a Pod.
	first, _, _ := underLoadThenSIGTERM(f.startServe(t, "serve 1", time.Second), 1, 2*time.Second)

	s2 := f.startServe(t, "serve 2", time.Second)
	recs, gaps := f.audit(t)
	if c := compare(first, recs); !c.exact() || len(gaps) != 0 {
		t.Fatalf("after SIGTERM and restart, the ledger does not hold exactly the answered admissions of the first run: %s; gaps %+v", c, gaps)
	}

	second, _, _ := underLoadThenSIGTERM(s2, 2, 2*time.Second)
	var all loadResult
	all.merge(first)
	all.merge(second)
	recs, gaps = f.audit(t)
	c := compare(&all, recs)
	if !c.exact() || len(gaps) != 0 {
		t.Fatalf("after two runs, the ledger does not hold exactly the answered admissions: %s; gaps %+v", c, gaps)
	}
	t.Logf("audit lists %d records: %d answered requests of two runs, %d images each", c.recorded, len(all.answered), podImages)
}

// TestPostgresDownMidRunLosesNothing: PostgreSQL is stopped (immediate
// shutdown, as a crash) while serve answers load, and started again. No
// admission fails or waits for it; once it is back the writer writes every
// queued record by itself (before any SIGTERM flush), each once, and no gap
// record exists, the outage having queued far fewer records than the queue's
// bound.
func TestPostgresDownMidRunLosesNothing(t *testing.T) {
	pg := storetest.StartPostgres(t)
	f := newFixture(t, postgresStore, "IMAGE_SWAPPER_DATABASE_URL="+pg.DSN())
	g := newLoadgen(t, f)
	s := f.startServe(t, "serve", 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := background(func() *loadResult { return g.run(ctx, s, rate, 1) })
	time.Sleep(2 * time.Second)
	down := time.Now()
	pg.Stop()
	time.Sleep(3 * time.Second)
	if q := s.metric(t, metricQueued); q == 0 {
		t.Fatalf("nothing is queued with PostgreSQL down; the writer should be holding the outage's records")
	}
	pg.Start()
	up := time.Now()
	time.Sleep(2 * time.Second)
	cancel()
	res := wait()

	during := res.answeredBetween(down, up)
	t.Logf("%d requests sent, %d answered, %d of them while PostgreSQL was down (%s); p99 latency %s while it was down, %s while it was up",
		res.sent, len(res.answered), during, up.Sub(down).Round(time.Millisecond), res.p99(down, up, true), res.p99(down, up, false))
	if len(res.failures) > 0 {
		t.Fatalf("%d admissions failed; a down store must never fail one (first: %v)", len(res.failures), res.firstErr)
	}
	if during == 0 {
		t.Fatal("no admission was answered while PostgreSQL was down")
	}
	if during*podImages >= defaultMaxQueue {
		t.Fatalf("the outage queued %d records, beyond the queue's bound of %d: lower the rate", during*podImages, defaultMaxQueue)
	}

	// Written by the writer's own retries, while serve still runs.
	err := testenv.Eventually(2*time.Minute, 200*time.Millisecond, func() error {
		if q := s.metric(t, metricQueued); q != 0 {
			return fmt.Errorf("%v records still queued", q)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the writer did not catch up after PostgreSQL came back: %v", err)
	}
	if n := s.metric(t, metricFailures); n == 0 {
		t.Errorf("%s is 0: the writer never saw the outage, so the test proved nothing", metricFailures)
	}
	if n := s.metric(t, metricDropped); n != 0 {
		t.Errorf("%s is %v, want 0 within the queue's bound", metricDropped, n)
	}
	recs, gaps := f.audit(t)
	if c := compare(res, recs); !c.exact() || len(gaps) != 0 {
		t.Fatalf("after the outage, before SIGTERM: %s; gaps %+v (want none)", c, gaps)
	}
	for _, msg := range []string{"writing to the ledger failed; retrying", "ledger writes recovered"} {
		if !strings.Contains(s.events(), msg) {
			t.Errorf("serve did not log %q", msg)
		}
	}

	s.stop(t)
	recs, gaps = f.audit(t)
	c := compare(res, recs)
	if !c.exact() || len(gaps) != 0 {
		t.Fatalf("after SIGTERM: %s; gaps %+v (want none)", c, gaps)
	}
	t.Logf("audit lists %d records for %d answered requests", c.recorded, len(res.answered))
}

// TestPostgresDownPastTheQueueBoundWritesAGap: with a small queue, a writer
// under steady load keeps what fits while PostgreSQL is down and drops the
// rest; once PostgreSQL is back, the ledger holds every record that was
// kept, once, and gap records whose spans cover exactly the records that
// are missing, with their count. audit prints the gap. serve has no setting
// for the queue's bound (100,000 records), so this drives store.Writer
// directly, as serve does.
func TestPostgresDownPastTheQueueBoundWritesAGap(t *testing.T) {
	pg := storetest.StartPostgres(t)
	ctx := context.Background()
	st, err := store.OpenPostgres(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	const maxQueue = 2000
	w := store.NewWriter(st, store.WriterOptions{MaxQueue: maxQueue, BatchSize: 500, Interval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Registerer: reg})
	dropped := func() float64 { return testenv.Gathered(t, reg, metricDropped) }

	// Record i has time t0 + i ms, by which the test knows it again.
	t0 := time.Now().Truncate(time.Millisecond)
	record := func(i int) store.AdmissionRecord {
		return store.AdmissionRecord{
			Time: t0.Add(time.Duration(i) * time.Millisecond), UID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i),
			Operation: "CREATE", Endpoint: store.EndpointMutate, Namespace: "default", Pod: "shop-*", Container: "app",
			ContainerKind: store.ContainerRegular, Image: "nginx:1.27", Normalized: "docker.io/library/nginx:1.27", Action: "keep",
		}
	}
	stop := make(chan struct{})
	produced := background(func() int {
		// About 5,000 records a second, five each millisecond.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		i := 0
		for {
			select {
			case <-stop:
				return i
			case <-tick.C:
				for range 5 {
					w.Record(record(i))
					i++
				}
			}
		}
	})
	time.Sleep(time.Second)
	pg.Stop()
	err = testenv.Eventually(time.Minute, 10*time.Millisecond, func() error {
		if dropped() == 0 {
			return fmt.Errorf("no record dropped yet; %d queued", w.Pending())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // dropping all along
	pg.Start()
	time.Sleep(time.Second) // written again
	close(stop)
	n := produced()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := w.Close(cctx); err != nil {
		t.Fatal(err)
	}

	recs, err := st.Admissions(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	present := make([]bool, n)
	for _, r := range recs {
		i := int(r.Time.Sub(t0) / time.Millisecond)
		if i < 0 || i >= n || present[i] {
			t.Fatalf("record at %s (index %d of %d) is unknown or written twice", r.Time, i, n)
		}
		present[i] = true
	}
	gaps, err := st.Gaps(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	missing := n - len(recs)
	var counted int64
	for _, g := range gaps {
		counted += g.Count
	}
	t.Logf("%d records produced, %d written, %d missing; gaps %+v; %v dropped", n, len(recs), missing, gaps, dropped())
	if len(gaps) == 0 || int64(missing) != counted || float64(counted) != dropped() {
		t.Fatalf("%d records missing, gap records count %d (%+v), %s says %v; want all three equal and not zero", missing, counted, gaps, metricDropped, dropped())
	}
	// Every missing record falls in a gap's span, and a gap counts the
	// records missing in its span: it says which records are lost.
	inGap := make([]int64, len(gaps))
	for i, ok := range present {
		if ok {
			continue
		}
		at := t0.Add(time.Duration(i) * time.Millisecond)
		j := slices.IndexFunc(gaps, func(g store.Gap) bool { return !at.Before(g.From) && !at.After(g.To) })
		if j < 0 {
			t.Fatalf("record %d (at %s) is missing but in no gap: %+v", i, at, gaps)
		}
		inGap[j]++
	}
	for j, g := range gaps {
		if inGap[j] != g.Count {
			t.Errorf("gap %+v counts %d records, but %d are missing in its span", g, g.Count, inGap[j])
		}
	}

	// audit ends with the gap records.
	f := &fixture{binary: testenv.ImageSwapper(t), env: []string{"IMAGE_SWAPPER_DATABASE_URL=" + pg.DSN()}}
	f.configPath = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f.configPath, []byte("targetRegistry: registry.example.com\nstore:\n"+postgresStore+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listed, auditGaps := f.audit(t)
	var auditCounted int64
	for _, g := range auditGaps {
		auditCounted += g.Gap.Count
	}
	if len(listed) != len(recs) || len(auditGaps) != len(gaps) || auditCounted != counted {
		t.Errorf("audit lists %d records and %d gaps counting %d; want %d records and %d gaps counting %d", len(listed), len(auditGaps), auditCounted, len(recs), len(gaps), counted)
	}
}

// TestTwoServersShareOnePostgres: two serve processes start at once on one
// empty database (both apply the migrations) and answer load at once. No
// write transaction of either fails (no conflict between them), and the
// ledger holds exactly the records of the requests each answered, each once:
// its total is the sum of both.
func TestTwoServersShareOnePostgres(t *testing.T) {
	pg := storetest.StartPostgres(t)
	f := newFixture(t, postgresStore, "IMAGE_SWAPPER_DATABASE_URL="+pg.DSN())
	g := newLoadgen(t, f)

	// Started together, without retries: a server that fails to start
	// beside the other fails the test.
	starts := [2]func() startResult{}
	for i := range starts {
		starts[i] = background(func() startResult {
			s, err := f.tryStartServe(fmt.Sprintf("serve %d", i+1), 0)
			return startResult{s, err}
		})
	}
	var (
		servers [2]*server
		errs    []error
	)
	for i, wait := range starts {
		r := wait()
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		servers[i] = r.s
		r.s.killAtEnd(t)
	}
	if len(errs) > 0 {
		t.Fatalf("two servers starting on one empty database: %v", errors.Join(errs...))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loads [2]func() *loadResult
	for i, s := range servers {
		loads[i] = background(func() *loadResult { return g.run(ctx, s, rate, uint32(i+1)) })
	}
	time.Sleep(4 * time.Second)
	cancel()
	var all loadResult
	for i, wait := range loads {
		res := wait()
		t.Logf("%s: %d requests sent, %d answered", servers[i].name, res.sent, len(res.answered))
		if len(res.failures) > 0 {
			t.Fatalf("%s: %d admissions failed (first: %v)", servers[i].name, len(res.failures), res.firstErr)
		}
		all.merge(res)
	}

	for _, s := range servers {
		err := testenv.Eventually(time.Minute, 100*time.Millisecond, func() error {
			if q := s.metric(t, metricQueued); q != 0 {
				return fmt.Errorf("%v records still queued", q)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := s.metric(t, metricFailures); n != 0 {
			t.Errorf("%s: %v write transactions failed while the other server wrote too; want none\n%s", s.name, n, s.events())
		}
	}
	for _, s := range servers {
		s.stop(t)
	}
	recs, gaps := f.audit(t)
	c := compare(&all, recs)
	if !c.exact() || len(gaps) != 0 {
		t.Fatalf("two servers on one database: %s; gaps %+v", c, gaps)
	}
	t.Logf("audit lists %d records for the %d requests both servers answered", c.recorded, len(all.answered))
}

type startResult struct {
	s   *server
	err error
}

// killRate is the requests a second of the kill -9 runs: the rate of the
// latency benchmark in docs/performance.md.
const killRate = 1000

// killRuns is how many times serve is killed.
const killRuns = 5

// TestKill9LosesOnlyTheUnflushedBatch: serve under load at killRate is
// killed with SIGKILL, killRuns times, each with a ledger of its own. Every
// record the ledger holds belongs to a request that was sent, once, and
// what is lost is the end of the queue, the records not yet committed: the
// writer commits in the order records were queued, and a request's records
// are queued before it is answered, so no request answered before another
// was sent may have lost records when the other's were written. The test
// logs how many records each kill lost, and how old they were
// (docs/operations.md quotes them).
func TestKill9LosesOnlyTheUnflushedBatch(t *testing.T) {
	var lost []int
	for run := range killRuns {
		f := newFixture(t, sqliteStore(t.TempDir()))
		g := newLoadgen(t, f)
		s := f.startServe(t, fmt.Sprintf("serve %d", run+1), 0)
		ctx, cancel := context.WithCancel(context.Background())
		wait := background(func() *loadResult { return g.run(ctx, s, killRate, uint32(run+1)) })
		time.Sleep(3 * time.Second)
		kill := time.Now()
		s.proc.Kill()
		time.Sleep(200 * time.Millisecond)
		cancel()
		res := wait()

		recs, _ := f.audit(t)
		c := compare(res, recs)
		if n := res.failedBefore(kill); n > 0 {
			t.Fatalf("run %d: %d requests failed before the kill (first: %v)", run+1, n, res.firstErr)
		}
		if len(c.doubled)+len(c.wrong) > 0 {
			t.Fatalf("run %d: %s", run+1, c)
		}
		// The last request sent of those with records written, and the
		// first answered of those that lost records.
		var lastWritten, firstLost string
		for _, r := range recs {
			if lastWritten == "" || res.sentAt[r.UID].After(res.sentAt[lastWritten]) {
				lastWritten = r.UID
			}
		}
		var oldest time.Duration // the age at the kill of the oldest answer whose records were lost
		for _, uid := range c.missing {
			at := res.answered[uid].at
			oldest = max(oldest, kill.Sub(at))
			if firstLost == "" || at.Before(res.answered[firstLost].at) {
				firstLost = uid
			}
		}
		if firstLost != "" && lastWritten != "" && res.answered[firstLost].at.Before(res.sentAt[lastWritten]) {
			t.Errorf("run %d: request %s lost records, though it was answered (%s before the kill) before request %s was sent (%s before the kill), whose records were written: a record was lost from the middle of the queue, not its end",
				run+1, firstLost, kill.Sub(res.answered[firstLost].at).Round(time.Millisecond), lastWritten, kill.Sub(res.sentAt[lastWritten]).Round(time.Millisecond))
		}
		// A request the server recorded may have lost its answer to the
		// kill; its uid must still be one the test sent.
		for _, uid := range c.unanswered {
			if !strings.HasPrefix(uid, fmt.Sprintf("%08x-", run+1)) {
				t.Errorf("run %d: the ledger has uid %s, which this run never sent", run+1, uid)
			}
		}
		lastSecond := res.answeredBetween(kill.Add(-time.Second), kill)
		t.Logf("run %d: %d requests answered (%d in the last second before the kill, %d records/s), %d records written, %d records lost (%d requests, %.0f ms of admissions; the oldest answered %s before the kill), %d recorded whose answer the kill cut off",
			run+1, len(res.answered), lastSecond, lastSecond*podImages, c.recorded, c.lost, len(c.missing), 1000*float64(c.lost)/float64(max(1, lastSecond*podImages)), oldest.Round(time.Millisecond), len(c.unanswered))
		lost = append(lost, c.lost)
	}
	slices.Sort(lost)
	t.Logf("records lost by %d kills at %d req/s (%d records a request): %v", killRuns, killRate, podImages, lost)
}
