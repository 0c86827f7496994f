package vulngate_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// replica is a gate of one of several replicas sharing one PostgreSQL.
type replica struct {
	gate    *vulngate.Gate
	st      store.Store
	metrics *prometheus.Registry
}

func (f *fixture) replica(t *testing.T, pg *storetest.Postgres, holder string, ttl time.Duration) *replica {
	t.Helper()
	st, err := store.OpenPostgres(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	w := store.NewWriter(st, store.WriterOptions{})
	r := &replica{st: st, metrics: prometheus.NewRegistry()}
	c := claim.New(st, claim.Options{Holder: holder, TTL: ttl, Poll: 20 * time.Millisecond, Registerer: r.metrics})
	if r.gate, err = vulngate.New(vulngate.Options{Scanning: f.scanning, Registry: f.client, Store: st, Ledger: w, Claims: c, Registerer: r.metrics}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.gate.Close()
		_ = w.Close(context.Background())
		st.Close()
	})
	return r
}

// counter returns the value of the counter name{labels...}.
func (r *replica) counter(t *testing.T, name string, labels ...string) int {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			return int(m.GetCounter().GetValue())
		}
	}
	return 0
}

func (r *replica) claims(t *testing.T, result string) int {
	return r.counter(t, "image_swapper_claims_total", "kind", vulngate.ClaimKind, "result", result)
}

// TestReplicasOnOnePostgresScanOnce: two gates on one PostgreSQL, each
// looked up by ten Pods of one two-platform image at once, run the scanner
// once per platform manifest in all; both answer with its findings.
func TestReplicasOnOnePostgresScanOnce(t *testing.T) {
	f := newFixture(t)
	f.scanner.Sleep(t, "1")
	pg := storetest.StartPostgres(t)
	replicas := []*replica{f.replica(t, pg, "replica-a", 5*time.Second), f.replica(t, pg, "replica-b", 5*time.Second)}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]scan.ImageScan, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = replicas[i%2].gate.Lookup(ctx, f.image, nil) })
	}
	wg.Wait()
	t.Logf("20 Lookups over two replicas took %s", time.Since(start).Round(time.Millisecond))
	for i, got := range results {
		critical := 0
		for _, p := range got.Scanned {
			critical += scan.CountFindings(p.Findings).Critical
		}
		if got.Err != nil || len(got.Pending) != 0 || len(got.Scanned) != 2 || critical != 1 {
			t.Errorf("Lookup %d = %+v, want both platforms with amd64's one CRITICAL", i, got)
		}
	}
	runs := f.runs(t)
	slices.Sort(runs)
	want := []string{f.image.Name() + "@" + f.platforms[0].Digest, f.image.Name() + "@" + f.platforms[1].Digest}
	slices.Sort(want)
	if !slices.Equal(runs, want) {
		t.Errorf("scanner runs = %v, want one per platform manifest over both replicas %v", runs, want)
	}
	scans := replicas[0].counter(t, "image_swapper_scans_total", "result", "success") + replicas[1].counter(t, "image_swapper_scans_total", "result", "success")
	if scans != 2 {
		t.Errorf("image_swapper_scans_total{result=success} over both replicas = %d, want 2", scans)
	}
	won := replicas[0].claims(t, claim.Won) + replicas[1].claims(t, claim.Won)
	lost := replicas[0].claims(t, claim.Lost) + replicas[1].claims(t, claim.Lost)
	if won != 2 || lost != 2 {
		t.Errorf("claims: %d won, %d lost; want 2 and 2 (each manifest won by one replica, waited for by the other)", won, lost)
	}
	// The ledger holds one record per manifest, not one per replica.
	testenv.WaitFor(t, "both scans are in the store", 10*time.Second, func() bool {
		recs, err := replicas[0].st.Scans(context.Background(), store.Query{})
		return err == nil && len(recs) == 2
	})
	// A duplicate would come within a few of the writers' 200ms intervals.
	time.Sleep(time.Second)
	if recs, err := replicas[0].st.Scans(context.Background(), store.Query{}); err != nil || len(recs) != 2 {
		t.Errorf("stored scans: %d, %v; want 2", len(recs), err)
	}
}

// TestReplicaTakesOverAScanItsHolderAbandoned: another replica claimed
// the scans and died without renewing; this one waits for the claims to
// expire and scans.
func TestReplicaTakesOverAScanItsHolderAbandoned(t *testing.T) {
	f := newFixture(t)
	pg := storetest.StartPostgres(t)
	r := f.replica(t, pg, "replica-b", 5*time.Second)
	const ttl = time.Second
	for _, m := range f.platforms {
		if won, _, err := r.st.Claim(context.Background(), vulngate.ClaimKind, m.Digest, "replica-dead", ttl); err != nil || !won {
			t.Fatal(won, err)
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := r.gate.Lookup(ctx, f.image, nil)
	took := time.Since(start)
	t.Logf("took over after %s", took.Round(time.Millisecond))
	if got.Err != nil || len(got.Scanned) != 2 {
		t.Fatalf("Lookup = %+v, want both platforms scanned", got)
	}
	if took < ttl/2 {
		t.Errorf("scanned after %s, before the dead replica's claims (TTL %s) could expire", took, ttl)
	}
	if n := len(f.runs(t)); n != 2 {
		t.Errorf("the scanner ran %d times, want 2", n)
	}
	if r.claims(t, claim.Lost) != 2 || r.claims(t, claim.TakenOver) != 2 {
		t.Errorf("claims: lost %d, taken over %d; want 2, 2", r.claims(t, claim.Lost), r.claims(t, claim.TakenOver))
	}
}
