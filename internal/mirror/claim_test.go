package mirror

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
)

// replica is one mirror service of several sharing one PostgreSQL: its own
// registry client, store connection and claimer.
type replica struct {
	svc     *Service
	reg     *countingRegistry
	st      store.Store
	metrics *prometheus.Registry
	logs    *syncBuffer
}

func newReplica(t *testing.T, pg *storetest.Postgres, holder string, ttl time.Duration, hosts ...string) *replica {
	t.Helper()
	st, err := store.OpenPostgres(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &replica{reg: newCountingRegistry(t, hosts...), st: st, metrics: prometheus.NewRegistry(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := claim.New(st, claim.Options{Holder: holder, TTL: ttl, Poll: 20 * time.Millisecond, Logger: log, Registerer: r.metrics})
	r.svc = New(r.reg, Options{Claims: c, Logger: log, BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(r.svc.Close)
	return r
}

// claims returns image_swapper_claims_total{kind="copy", result}.
func (r *replica) claims(t *testing.T, result string) int {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var kind, res string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "kind":
					kind = l.GetValue()
				case "result":
					res = l.GetValue()
				}
			}
			if mf.GetName() == "image_swapper_claims_total" && kind == ClaimKind && res == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// TestReplicasOnOnePostgresCopyOnce runs 100 concurrent Ensures of one
// image spread over two services, each with its own registry client and
// connection to one PostgreSQL: the target receives one copy.
func TestReplicasOnOnePostgresCopyOnce(t *testing.T) {
	pg := storetest.StartPostgres(t)
	source, target := newTestRegistry(t), newTestRegistry(t)
	replicas := []*replica{
		newReplica(t, pg, "replica-a", 5*time.Second, source.Host, target.Host),
		newReplica(t, pg, "replica-b", 5*time.Second, source.Host, target.Host),
	}
	src, digest := source.pushIndex("team/app:1.0")
	dst := target.ref(reference.PathSafeRegistry(src.Registry) + "/" + src.Repository + ":" + src.Tag)
	source.Reset()
	// Hold the holder's copy until both replicas asked for it.
	b := newBlocker(t)
	source.SetIntercept(b.hold)

	const callers = 100
	results := make([]Result, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = replicas[i%2].svc.Ensure(context.Background(), src, dst) })
	}
	<-b.arrived
	eventually(t, "one replica waits for the other's copy", func() bool {
		return replicas[0].claims(t, claim.Lost)+replicas[1].claims(t, claim.Lost) == 1
	})
	b.releaseAll()
	wg.Wait()
	t.Logf("100 Ensures over two replicas took %s", time.Since(start).Round(time.Millisecond))

	copied := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i].Digest != digest {
			t.Errorf("caller %d got digest %s, want %s", i, results[i].Digest, digest)
		}
		if results[i].Copied {
			copied++
		}
	}
	if copied != callers/2 {
		t.Errorf("%d callers were told their replica copied, want the %d of one replica", copied, callers/2)
	}
	if got := target.count("PUT manifest tag"); got != 1 {
		t.Errorf("target received %d manifest PUTs by tag, want 1", got)
	}
	// An index of two platforms: two platform manifests and the index.
	if got := target.manifestPuts(); got != 3 {
		t.Errorf("target received %d manifest PUTs, want 3 (one copy of a two-platform index)", got)
	}
	if got := replicas[0].reg.copyStarted.Load() + replicas[1].reg.copyStarted.Load(); got != 1 {
		t.Errorf("Registry.Copy was called %d times over both replicas, want 1", got)
	}
	won := replicas[0].claims(t, claim.Won) + replicas[1].claims(t, claim.Won)
	taken := replicas[0].claims(t, claim.TakenOver) + replicas[1].claims(t, claim.TakenOver)
	if won != 1 || taken != 0 {
		t.Errorf("claims: %d won, %d taken over; want 1, 0", won, taken)
	}
	// Released: a later copy of the same target is claimed at once.
	if won, _, err := replicas[0].st.Claim(context.Background(), ClaimKind, dst.String(), "probe", time.Second); err != nil || !won {
		t.Errorf("after the copy the claim was not released: %v, %v", won, err)
	}
}

// TestReplicaTakesOverACopyItsHolderAbandoned: the holder stops renewing
// its claim mid-copy (it lost its database, as a replica that died does);
// the other replica takes the copy over once the claim expires.
func TestReplicaTakesOverACopyItsHolderAbandoned(t *testing.T) {
	pg := storetest.StartPostgres(t)
	source, target := newTestRegistry(t), newTestRegistry(t)
	const ttl = time.Second
	a := newReplica(t, pg, "replica-a", ttl, source.Host, target.Host)
	b := newReplica(t, pg, "replica-b", ttl, source.Host, target.Host)
	src, digest := source.pushImage("team/app:1.0")
	dst := target.ref(reference.PathSafeRegistry(src.Registry) + "/" + src.Repository + ":" + src.Tag)

	// Hold the first copy's first request (a's) until the test ends.
	var held atomic.Bool
	stuck := make(chan struct{})
	arrived := make(chan struct{})
	source.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if requestKind(r.Method, r.URL.Path) == firstOfCopy && held.CompareAndSwap(false, true) {
			close(arrived)
			<-stuck
		}
		return false
	})
	t.Cleanup(func() { close(stuck) })
	a.svc.Enqueue(src, dst)
	<-arrived
	// a dies: its claim is no longer renewed.
	a.st.Close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := b.svc.Ensure(ctx, src, dst)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("took over after %s", took.Round(time.Millisecond))
	if res.Digest != digest || !res.Copied {
		t.Errorf("Ensure = %+v, want %s copied by b", res, digest)
	}
	if took < ttl/2 {
		t.Errorf("b copied after %s, before a's claim (TTL %s) could expire", took, ttl)
	}
	if b.claims(t, claim.Lost) != 1 || b.claims(t, claim.TakenOver) != 1 {
		t.Errorf("b's claims: lost %d, taken over %d; want 1, 1", b.claims(t, claim.Lost), b.claims(t, claim.TakenOver))
	}
	if !strings.Contains(b.logs.String(), "took over work another replica left undone") {
		t.Errorf("b's log does not say it took over:\n%s", b.logs)
	}
	if got := target.count("PUT manifest tag"); got != 1 {
		t.Errorf("target received %d manifest PUTs by tag, want 1", got)
	}
}
