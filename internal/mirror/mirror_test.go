package mirror

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// fixture is a source and a target registry, a client for both and a
// Service whose finished copies arrive on events.
type fixture struct {
	source, target *testRegistry
	reg            *countingRegistry
	svc            *Service
	events         chan Event
	logs           *syncBuffer
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{
		source: newTestRegistry(t),
		target: newTestRegistry(t),
		events: make(chan Event, 1000),
		logs:   &syncBuffer{},
	}
	f.reg = newCountingRegistry(t, f.source.Host, f.target.Host)
	if opts.BaseBackoff == 0 {
		opts.BaseBackoff, opts.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	opts.OnCopy = func(e Event) { f.events <- e }
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc = New(f.reg, opts)
	t.Cleanup(f.svc.Close)
	return f
}

// dst is where src is mirrored in the target, keeping the source registry
// in the path as the product does.
func (f *fixture) dst(src reference.Reference) reference.Reference {
	return f.target.ref(reference.PathSafeRegistry(src.Registry) + "/" + src.Repository + ":" + src.Tag)
}

func TestEnsureSharesOneCopyAmongConcurrentCallers(t *testing.T) {
	f := newFixture(t, Options{Workers: 4})
	src, digest := f.source.pushImage("team/app:1.0")
	dst := f.dst(src)
	f.source.Reset()
	b := newBlocker(t)
	f.source.SetIntercept(b.hold)

	const callers = 100
	results := make([]Result, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if i%10 == 0 {
				f.svc.Enqueue(src, dst) // Enqueue shares the copy too.
			}
			results[i], errs[i] = f.svc.Ensure(context.Background(), src, dst)
		})
	}
	// Hold the copy until every caller waits for it, so that none of
	// them is served by the cache instead.
	eventually(t, "100 callers wait for one copy", func() bool { return f.svc.waiters(src, dst) == callers })
	<-b.arrived
	b.releaseAll()
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: Ensure(%s, %s): %v", i, src, dst, errs[i])
		}
		if results[i].Digest != digest || !results[i].Copied {
			t.Errorf("caller %d got %+v, want digest %s copied", i, results[i], digest)
		}
	}
	if got := f.target.manifestPuts(); got != 1 {
		t.Errorf("target received %d manifest PUTs, want 1", got)
	}
	if got := f.source.count(firstOfCopy); got != 1 {
		t.Errorf("source saw %d copies start (manifest HEADs by tag), want 1", got)
	}
	if got := f.reg.copyStarted.Load(); got != 1 {
		t.Errorf("Registry.Copy was called %d times, want 1", got)
	}
	if ev := <-f.events; ev.Err != nil || ev.Attempts != 1 || ev.Result.Digest != digest {
		t.Errorf("OnCopy got %+v, want one successful attempt with digest %s", ev, digest)
	}
	if len(f.events) != 0 {
		t.Errorf("OnCopy was called %d more times, want once in all", len(f.events))
	}

	// The copy filled the cache: neither call below reaches a registry.
	f.target.Reset()
	if got, ok, err := f.svc.Present(context.Background(), dst); err != nil || !ok || got != digest {
		t.Errorf("Present after the copy = %q, %v, %v; want %s, true, nil", got, ok, err, digest)
	}
	res, err := f.svc.Ensure(context.Background(), src, dst)
	if err != nil || res.Digest != digest || res.Copied {
		t.Errorf("Ensure after the copy = %+v, %v; want digest %s, not copied", res, err, digest)
	}
	if got := f.target.count("HEAD manifest tag", "GET manifest tag"); got != 0 {
		t.Errorf("the target was asked %d times after the copy, want 0", got)
	}
}

func TestEnsureRetriesOnlyWhatIsRetryable(t *testing.T) {
	tests := []struct {
		name string
		// statuses answer the source's first manifest GETs by tag, in
		// order; after them, forever (or, when 0, the real registry) answers.
		statuses     []int
		forever      int
		retryAfter   string
		maxAttempts  int
		wantAttempts int
		// wantErr are substrings of the error; none means success.
		wantErr []string
	}{
		{
			name:     "a 429 with Retry-After: 1 is waited out, then the copy succeeds",
			statuses: []int{http.StatusTooManyRequests}, retryAfter: "1",
			maxAttempts: 5, wantAttempts: 2,
		},
		{
			name:        "503s are retried and the copy then succeeds",
			statuses:    []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable},
			maxAttempts: 5, wantAttempts: 3,
		},
		{
			name:        "a 401 fails at once, after exactly one attempt",
			forever:     http.StatusUnauthorized,
			maxAttempts: 5, wantAttempts: 1,
			wantErr: []string{"not retried", "attempt 1 of 5", "401 Unauthorized", "team/app:1.0"},
		},
		{
			name:        "a source image that does not exist fails at once",
			forever:     http.StatusNotFound,
			maxAttempts: 5, wantAttempts: 1,
			wantErr: []string{"not retried", "404"},
		},
		{
			name:        "500s are retried until MaxAttempts is used up",
			forever:     http.StatusInternalServerError,
			maxAttempts: 3, wantAttempts: 3,
			wantErr: []string{"giving up after 3 attempts", "500 Internal Server Error"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{MaxAttempts: tc.maxAttempts})
			src, digest := f.source.pushImage("team/app:1.0")
			dst := f.dst(src)
			f.source.Reset()

			var mu sync.Mutex
			var answered []time.Time // when each scripted error was sent
			var retriedAt time.Time  // when the first GET the registry answered arrived
			f.source.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if requestKind(r.Method, r.URL.Path) != firstOfCopy {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				status := tc.forever
				if n := len(answered); n < len(tc.statuses) {
					status = tc.statuses[n]
				}
				if status == 0 {
					if retriedAt.IsZero() {
						retriedAt = time.Now()
					}
					return false
				}
				answered = append(answered, time.Now())
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				http.Error(w, http.StatusText(status), status)
				return true
			})

			res, err := f.svc.Ensure(context.Background(), src, dst)
			ev := <-f.events

			if ev.Attempts != tc.wantAttempts {
				t.Errorf("copy made %d attempts, want %d (err: %v)", ev.Attempts, tc.wantAttempts, ev.Err)
			}
			if got := f.source.count(firstOfCopy); got != tc.wantAttempts {
				t.Errorf("source saw %d copies start (manifest HEADs by tag), want %d", got, tc.wantAttempts)
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Ensure: %v", err)
				}
				if res.Digest != digest || !res.Copied {
					t.Errorf("Ensure = %+v, want digest %s copied", res, digest)
				}
			} else {
				if err == nil {
					t.Fatalf("Ensure succeeded, want an error containing %q", tc.wantErr)
				}
				t.Logf("error: %v", err)
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if !errors.Is(ev.Err, err) && ev.Err.Error() != err.Error() {
					t.Errorf("OnCopy error %v differs from Ensure's %v", ev.Err, err)
				}
				if f.target.manifestPuts() != 0 {
					t.Errorf("a failed copy wrote a manifest to the target")
				}
			}
			if tc.retryAfter != "" {
				mu.Lock()
				wait := retriedAt.Sub(answered[0])
				mu.Unlock()
				if wait < time.Second {
					t.Errorf("retried %v after a 429 with Retry-After: 1, want at least 1s", wait)
				}
			}
		})
	}
}

func TestRateLimitedHostDelaysItsWholeQueueAndIsLoggedOnce(t *testing.T) {
	f := newFixture(t, Options{Workers: 4})
	a, _ := f.source.pushImage("team/a:1")
	b, _ := f.source.pushImage("team/b:1")
	c, _ := f.source.pushImage("team/c:1")
	pathOf := func(r reference.Reference) string { return "/v2/" + r.Repository + "/manifests/" + r.Tag }

	var mu sync.Mutex
	limited := map[string]time.Time{} // path → when its 429 was sent
	firstOK := map[string]time.Time{} // path → when a GET was first let through
	bothArrived := make(chan struct{})
	arrivals := 0
	f.source.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if requestKind(r.Method, r.URL.Path) != firstOfCopy {
			return false
		}
		p := r.URL.Path
		mu.Lock()
		_, seen := limited[p]
		if (p == pathOf(a) || p == pathOf(b)) && !seen {
			limited[p] = time.Time{}
			if arrivals++; arrivals == 2 {
				close(bothArrived)
			}
			mu.Unlock()
			// Both copies are in flight when the registry starts limiting.
			<-bothArrived
			mu.Lock()
			limited[p] = time.Now()
			mu.Unlock()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "toomanyrequests", http.StatusTooManyRequests)
			return true
		}
		if _, ok := firstOK[p]; !ok {
			firstOK[p] = time.Now()
		}
		mu.Unlock()
		return false
	})

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	ensure := func(src reference.Reference) {
		wg.Go(func() {
			_, err := f.svc.Ensure(context.Background(), src, f.dst(src))
			errs <- err
		})
	}
	ensure(a)
	ensure(b)
	host := a.Registry
	eventually(t, "the source host is rate-limited", func() bool { return f.svc.gates.wait(host) > 0 })
	f.svc.gates.mu.Lock()
	gateUntil := f.svc.gates.until[host]
	f.svc.gates.mu.Unlock()
	ensure(c) // queued while the host is limited
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Ensure: %v", err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, src := range []reference.Reference{a, b} {
		p := pathOf(src)
		if wait := firstOK[p].Sub(limited[p]); wait < time.Second {
			t.Errorf("%s was retried %v after its 429 with Retry-After: 1, want at least 1s", src, wait)
		}
	}
	if at := firstOK[pathOf(c)]; at.Before(gateUntil) {
		t.Errorf("%s, queued while the host was limited, was fetched %v before the limit ended", c, gateUntil.Sub(at))
	}
	if n := strings.Count(f.logs.String(), "source registry is rate limiting"); n != 1 {
		t.Errorf("rate limiting was logged %d times, want once:\n%s", n, f.logs)
	}
}

func TestEnsureReturnsAtTheDeadlineWhileTheCopyFinishesInTheBackground(t *testing.T) {
	f := newFixture(t, Options{})
	src, digest := f.source.pushIndex("team/multi:2") // a multi-arch index
	dst := f.dst(src)
	b := newBlocker(t)
	f.source.SetIntercept(b.hold)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := f.svc.Ensure(ctx, src, dst)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure with a deadline while the source stalls = %v, want context.DeadlineExceeded", err)
	}
	// The source still holds the copy's first request, so Ensure did not
	// wait for the copy; and the copy has not ended.
	<-b.arrived
	select {
	case ev := <-f.events:
		t.Fatalf("the copy ended while its source request was held: %+v", ev)
	default:
	}

	b.releaseAll()
	ev := <-f.events
	if ev.Err != nil || !ev.Result.Copied || ev.Result.Digest != digest {
		t.Fatalf("background copy = %+v, want the index %s copied", ev, digest)
	}
	if have, ok, err := f.reg.Exists(context.Background(), dst); err != nil || !ok || have.Digest != digest {
		t.Fatalf("target holds %q (found %v, err %v), want the source index %s", have.Digest, ok, err, digest)
	}

	puts := f.target.manifestPuts()
	res, err := f.svc.Ensure(context.Background(), src, dst)
	if err != nil || res.Digest != digest || res.Copied {
		t.Errorf("a later Ensure = %+v, %v; want digest %s, not copied again", res, err, digest)
	}
	if got := f.target.manifestPuts(); got != puts {
		t.Errorf("a later Ensure wrote %d more manifests, want 0", got-puts)
	}
}

func TestPresentCachesAnswersForTheirTTL(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, Options{PositiveTTL: time.Minute, NegativeTTL: 10 * time.Second, Now: clock.Now})
	present, presentDigest := f.target.pushImage("docker.io/library/nginx:1.27")
	absent := f.target.ref("docker.io/library/redis:7")
	f.target.Reset()
	var absentDigest string
	pushHEADs := 0 // HEADs made by pushing, not by Present

	steps := []struct {
		name      string
		advance   time.Duration
		push      bool // push absent into the target before looking
		ref       reference.Reference
		wantOK    bool
		wantHEADs int // HEADs made so far
	}{
		{name: "the first look at an image that is there makes one HEAD", ref: present, wantOK: true, wantHEADs: 1},
		{name: "a look within PositiveTTL makes no request", advance: time.Minute - time.Nanosecond, ref: present, wantOK: true, wantHEADs: 1},
		{name: "a look once PositiveTTL has passed asks again", advance: time.Nanosecond, ref: present, wantOK: true, wantHEADs: 2},
		{name: "the first look at an image that is not there makes one HEAD", ref: absent, wantOK: false, wantHEADs: 3},
		{name: "a look within NegativeTTL makes no request, even after the image arrived", advance: 10*time.Second - time.Nanosecond, push: true, ref: absent, wantOK: false, wantHEADs: 3},
		{name: "a look once NegativeTTL has passed sees the image", advance: time.Nanosecond, ref: absent, wantOK: true, wantHEADs: 4},
		{name: "which is then cached as found", advance: 30 * time.Second, ref: absent, wantOK: true, wantHEADs: 4},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		if st.push {
			before := f.target.count("HEAD manifest tag")
			_, absentDigest = f.target.pushImage("docker.io/library/redis:7")
			pushHEADs += f.target.count("HEAD manifest tag") - before
		}
		digest, ok, err := f.svc.Present(context.Background(), st.ref)
		if err != nil {
			t.Fatalf("%s: Present(%s): %v", st.name, st.ref, err)
		}
		wantDigest := ""
		if st.wantOK {
			wantDigest = presentDigest
			if st.ref == absent {
				wantDigest = absentDigest
			}
		}
		if ok != st.wantOK || digest != wantDigest {
			t.Errorf("%s: Present(%s) = %q, %v; want %q, %v", st.name, st.ref, digest, ok, wantDigest, st.wantOK)
		}
		if got := f.target.count("HEAD manifest tag") - pushHEADs; got != st.wantHEADs {
			t.Errorf("%s: %d HEADs so far, want %d", st.name, got, st.wantHEADs)
		}
	}
}

func TestPresentDoesNotCacheErrors(t *testing.T) {
	f := newFixture(t, Options{})
	ref, digest := f.target.pushImage("team/app:1.0")
	f.target.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	if _, _, err := f.svc.Present(context.Background(), ref); err == nil || !strings.Contains(err.Error(), ref.String()) {
		t.Fatalf("Present while the target fails = %v, want an error naming %s", err, ref)
	}
	f.target.SetIntercept(nil)
	got, ok, err := f.svc.Present(context.Background(), ref)
	if err != nil || !ok || got != digest {
		t.Fatalf("Present once the target is back = %q, %v, %v; want %s, true, nil", got, ok, err, digest)
	}
}

func TestSlowNegativeLookupDoesNotHideAFinishedCopy(t *testing.T) {
	clock := newFakeClock()
	c := existenceCache{now: clock.Now, positiveTTL: time.Minute, negativeTTL: time.Minute,
		entries: map[reference.Reference]cacheEntry{}, sweepAt: minSweep}
	src, _ := reference.Parse("quay.io/team/app:1")
	dst, _ := reference.Parse("mirror.example.com/quay.io/team/app:1")

	since := c.generation() // a HEAD starts
	c.storeCopied(dst, src, "sha256:"+strings.Repeat("a", 64))
	c.storeLooked(dst, "", false, since) // and answers "not found" after the copy

	e, ok := c.lookup(dst)
	if !ok || !e.found || e.source != src {
		t.Fatalf("cache entry = %+v, %v; want the copy's positive entry", e, ok)
	}
}

func TestCacheSweepsExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	c := existenceCache{now: clock.Now, positiveTTL: time.Minute, negativeTTL: time.Second,
		entries: map[reference.Reference]cacheEntry{}, sweepAt: minSweep}
	for i := range minSweep - 1 {
		c.storeLooked(reference.Reference{Registry: "r.example.com", Repository: "old", Tag: "t" + strconv.Itoa(i)}, "", false, c.generation())
	}
	clock.advance(time.Second)
	c.storeLooked(reference.Reference{Registry: "r.example.com", Repository: "new", Tag: "1"}, "sha256:x", true, c.generation())
	if len(c.entries) != 1 {
		t.Fatalf("after the negative entries expired the cache holds %d entries, want 1", len(c.entries))
	}
}

func TestWorkersBoundCopiesInFlight(t *testing.T) {
	const workers, images = 2, 10
	f := newFixture(t, Options{Workers: workers})
	var srcs []reference.Reference
	for i := range images {
		src, _ := f.source.pushImage("team/app" + strconv.Itoa(i) + ":1")
		srcs = append(srcs, src)
	}
	b := newBlocker(t)
	f.source.SetIntercept(b.hold)
	for _, src := range srcs {
		f.svc.Enqueue(src, f.dst(src))
	}

	// Let copies through one at a time, but only once `workers` of them
	// are held at the source, so the pool is used to its bound.
	held, released := 0, 0
	for released < images {
		if held < workers && released+held < images {
			<-b.arrived
			held++
			continue
		}
		b.release <- struct{}{}
		held--
		released++
	}
	for range images {
		if ev := <-f.events; ev.Err != nil {
			t.Errorf("copy of %s: %v", ev.Source, ev.Err)
		}
	}
	if got := f.reg.maxInFlight(); got != workers {
		t.Errorf("at most %d copies were in flight, want exactly %d (Workers)", got, workers)
	}
	if got := f.target.count("PUT manifest tag"); got != images {
		t.Errorf("target received %d tagged manifests, want %d", got, images)
	}
}

func TestCloseCancelsCopiesAndLeavesNoGoroutines(t *testing.T) {
	f := newFixture(t, Options{Workers: 2})
	var srcs []reference.Reference
	for _, repo := range []string{"team/a:1", "team/b:1", "team/c:1"} {
		src, _ := f.source.pushImage(repo)
		srcs = append(srcs, src)
	}
	b := newBlocker(t)
	f.source.SetIntercept(b.hold)
	f.svc.Enqueue(srcs[0], f.dst(srcs[0]))
	f.svc.Enqueue(srcs[1], f.dst(srcs[1]))
	<-b.arrived
	<-b.arrived
	waiting := make(chan error, 1)
	go func() {
		_, err := f.svc.Ensure(context.Background(), srcs[2], f.dst(srcs[2]))
		waiting <- err
	}()
	eventually(t, "a third copy waits for a worker", func() bool { return f.svc.waiters(srcs[2], f.dst(srcs[2])) == 1 })

	f.svc.Close() // the source still holds both running copies

	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("Ensure waiting during Close = %v, want ErrClosed", err)
	}
	attempts := map[string]int{}
	for range srcs {
		ev := <-f.events
		if !errors.Is(ev.Err, ErrClosed) {
			t.Errorf("copy of %s ended with %v, want ErrClosed", ev.Source, ev.Err)
		}
		attempts[ev.Source.Repository] = ev.Attempts
	}
	if want := map[string]int{"team/a": 1, "team/b": 1, "team/c": 0}; !equalMaps(attempts, want) {
		t.Errorf("attempts per copy = %v, want %v", attempts, want)
	}
	if _, err := f.svc.Ensure(context.Background(), srcs[2], f.dst(srcs[2])); !errors.Is(err, ErrClosed) {
		t.Errorf("Ensure after Close = %v, want ErrClosed", err)
	}
	f.svc.Enqueue(srcs[2], f.dst(srcs[2]))
	if len(f.events) != 0 {
		t.Errorf("Enqueue after Close started a copy")
	}
	f.svc.Close() // a second Close is harmless
	eventually(t, "no service goroutine is left", func() bool { return len(serviceGoroutines()) == 0 })
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestBackoffIsFullJitterUnderAnExponentialCeiling(t *testing.T) {
	s := New(nil, Options{BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	defer s.Close()
	tests := []struct {
		name    string
		attempt int
		ceiling time.Duration
	}{
		{"the first retry waits up to the base", 1, 100 * time.Millisecond},
		{"the ceiling doubles with each attempt", 3, 400 * time.Millisecond},
		{"the ceiling stops at MaxBackoff", 5, time.Second},
		{"a huge attempt number does not overflow", 1000, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var most time.Duration
			for range 2000 {
				d := s.backoff(tc.attempt)
				if d < 0 || d > tc.ceiling {
					t.Fatalf("backoff(%d) = %v, want within [0, %v]", tc.attempt, d, tc.ceiling)
				}
				most = max(most, d)
			}
			if most < tc.ceiling/2 {
				t.Errorf("backoff(%d) never exceeded %v in 2000 draws; want draws spread over [0, %v]", tc.attempt, most, tc.ceiling)
			}
		})
	}
}

func BenchmarkPresentCached(b *testing.B) {
	f := newFixture(b, Options{})
	ref, _ := f.target.pushImage("docker.io/library/nginx:1.27")
	ctx := context.Background()
	if _, ok, err := f.svc.Present(ctx, ref); err != nil || !ok {
		b.Fatalf("Present: %v, %v", ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := f.svc.Present(ctx, ref); err != nil || !ok {
			b.Fatalf("Present: %v, %v", ok, err)
		}
	}
}

func BenchmarkEnsureAlreadyPresent(b *testing.B) {
	f := newFixture(b, Options{})
	src, _ := f.source.pushImage("library/nginx:1.27")
	dst := f.dst(src)
	ctx := context.Background()
	if _, err := f.svc.Ensure(ctx, src, dst); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Ensure(ctx, src, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func TestObserveRateLimitGatesTheHostWhenNothingRemains(t *testing.T) {
	tests := []struct {
		name     string
		report   registry.RateLimit
		host     string        // the gate to check
		wantWait time.Duration // 0: not limited
	}{
		{
			name:     "Docker Hub with none remaining of 100 per 6h waits 216s, under its API host name too",
			report:   registry.RateLimit{Registry: "registry-1.docker.io", Limit: 100, Remaining: 0, Window: 6 * time.Hour},
			host:     "docker.io",
			wantWait: 216 * time.Second,
		},
		{
			name:     "a registry that gives no window waits MaxBackoff",
			report:   registry.RateLimit{Registry: "quay.io", Limit: -1, Remaining: 0},
			host:     "quay.io",
			wantWait: 30 * time.Second,
		},
		{
			name:   "requests remaining do not slow anything down",
			report: registry.RateLimit{Registry: "docker.io", Limit: 100, Remaining: 1, Window: 6 * time.Hour},
			host:   "docker.io",
		},
		{
			name:   "a registry that does not report remaining requests is not limited",
			report: registry.RateLimit{Registry: "docker.io", Limit: 100, Remaining: -1, Window: 6 * time.Hour},
			host:   "docker.io",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			s := New(nil, Options{MaxBackoff: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			defer s.Close()
			s.ObserveRateLimit(tc.report)
			s.ObserveRateLimit(tc.report) // a second report in the same episode
			got := s.gates.wait(tc.host)
			if tc.wantWait == 0 {
				if got != 0 {
					t.Errorf("host %s is limited for %v, want not limited", tc.host, got)
				}
				return
			}
			// The gate was set a moment ago, so a little less may remain.
			if got > tc.wantWait || got < tc.wantWait-time.Minute {
				t.Errorf("host %s is limited for %v, want %v", tc.host, got, tc.wantWait)
			}
			if n := strings.Count(logs.String(), "rate limiting"); n != 1 {
				t.Errorf("the limit was logged %d times, want once:\n%s", n, logs)
			}
		})
	}
}
