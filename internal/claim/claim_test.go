package claim_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/store"
)

// The store keeps claims.
var _ claim.Store = store.Store(nil)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newClaimer(t *testing.T, st claim.Store, holder string, ttl time.Duration) (*claim.Claimer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return claim.New(st, claim.Options{Holder: holder, TTL: ttl, Poll: 10 * time.Millisecond, Registerer: reg}), reg
}

// counted returns image_swapper_claims_total{kind, result}.
func counted(t *testing.T, reg *prometheus.Registry, kind, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "image_swapper_claims_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

func TestDoRunsOnceWhileTheHolderWorks(t *testing.T) {
	st := openStore(t)
	a, regA := newClaimer(t, st, "a", time.Second)
	b, regB := newClaimer(t, st, "b", time.Second)
	ctx := context.Background()

	var done atomic.Bool
	started := make(chan struct{})
	finish := make(chan struct{})
	aRan := make(chan error)
	go func() {
		ran, err := a.Do(ctx, claim.Work{Kind: "copy", Key: "k", Run: func(context.Context) error {
			close(started)
			<-finish
			done.Store(true)
			return nil
		}})
		if !ran {
			err = errors.New("a did not run the work")
		}
		aRan <- err
	}()
	<-started
	bDone := make(chan bool)
	go func() {
		ran, err := b.Do(ctx, claim.Work{Kind: "copy", Key: "k",
			Run:  func(context.Context) error { t.Error("b ran the work a holds"); return nil },
			Done: func(context.Context) bool { return done.Load() },
		})
		if err != nil {
			t.Error(err)
		}
		bDone <- ran
	}()
	// b waits for as long as a works, past a's TTL: a renews.
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-bDone:
		t.Fatal("b stopped waiting while a held the claim")
	default:
	}
	close(finish)
	if err := <-aRan; err != nil {
		t.Fatal(err)
	}
	if ran := <-bDone; ran {
		t.Error("b says it ran the work")
	}
	if counted(t, regA, "copy", claim.Won) != 1 || counted(t, regB, "copy", claim.Lost) != 1 || counted(t, regB, "copy", claim.TakenOver) != 0 {
		t.Errorf("claims counted: a won %d, b lost %d, b took over %d; want 1, 1, 0",
			counted(t, regA, "copy", claim.Won), counted(t, regB, "copy", claim.Lost), counted(t, regB, "copy", claim.TakenOver))
	}
	// Released: the next claim is won at once.
	if won, _, err := st.Claim(ctx, "copy", "k", "c", time.Second); err != nil || !won {
		t.Errorf("after the work: Claim = %v, %v; want the claim released", won, err)
	}
}

func TestDoTakesOverFromAHolderThatDied(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	// "dead" claimed the work and never renews it.
	if won, _, err := st.Claim(ctx, "scan", "sha256:1", "dead", 300*time.Millisecond); err != nil || !won {
		t.Fatal(won, err)
	}
	b, reg := newClaimer(t, st, "b", time.Second)
	start := time.Now()
	var runs int
	ran, err := b.Do(ctx, claim.Work{Kind: "scan", Key: "sha256:1",
		Run:  func(context.Context) error { runs++; return nil },
		Done: func(context.Context) bool { return false },
	})
	if err != nil || !ran || runs != 1 {
		t.Fatalf("Do = %v, %v with %d runs; want the work run once here", ran, err, runs)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("took over after %s, before the claim expired", waited)
	}
	if counted(t, reg, "scan", claim.Lost) != 1 || counted(t, reg, "scan", claim.TakenOver) != 1 {
		t.Errorf("lost %d, taken over %d; want 1, 1", counted(t, reg, "scan", claim.Lost), counted(t, reg, "scan", claim.TakenOver))
	}
}

func TestDoLingersAfterSuccessAndReleasesAfterFailure(t *testing.T) {
	st := openStore(t)
	a, _ := newClaimer(t, st, "a", time.Second)
	ctx := context.Background()
	if _, err := a.Do(ctx, claim.Work{Kind: "scan", Key: "ok", Linger: time.Minute, Run: func(context.Context) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if won, holder, _ := st.Claim(ctx, "scan", "ok", "b", time.Second); won || holder != "a" {
		t.Errorf("after success with Linger: b won %v, holder %q; want a to keep it", won, holder)
	}
	boom := errors.New("boom")
	if _, err := a.Do(ctx, claim.Work{Kind: "scan", Key: "bad", Linger: time.Minute, Run: func(context.Context) error { return boom }}); !errors.Is(err, boom) {
		t.Fatalf("Do = %v, want the work's error", err)
	}
	if won, _, _ := st.Claim(ctx, "scan", "bad", "b", time.Second); !won {
		t.Error("after a failure the claim was not released")
	}
}

// brokenStore fails every call, as a store that cannot be reached does.
type brokenStore struct{}

var errDown = errors.New("connection refused")

func (brokenStore) Claim(context.Context, string, string, string, time.Duration) (bool, string, error) {
	return false, "", errDown
}
func (brokenStore) Renew(context.Context, string, string, string, time.Duration) (bool, error) {
	return false, errDown
}
func (brokenStore) Release(context.Context, string, string, string) error { return errDown }

func TestDoRunsUnclaimedWhenTheStoreIsDown(t *testing.T) {
	c, reg := newClaimer(t, brokenStore{}, "a", time.Second)
	var runs int
	ran, err := c.Do(context.Background(), claim.Work{Kind: "copy", Key: "k", Run: func(context.Context) error { runs++; return nil }})
	if err != nil || !ran || runs != 1 {
		t.Fatalf("Do = %v, %v with %d runs; want the work run", ran, err, runs)
	}
	if n := counted(t, reg, "copy", claim.Unavailable); n != 1 {
		t.Errorf("unavailable counted %d, want 1", n)
	}
}

func TestDoStopsWaitingWithItsContext(t *testing.T) {
	st := openStore(t)
	if _, _, err := st.Claim(context.Background(), "copy", "k", "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	c, _ := newClaimer(t, st, "a", time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ran, err := c.Do(ctx, claim.Work{Kind: "copy", Key: "k", Run: func(context.Context) error { t.Error("ran"); return nil }})
	if ran || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do = %v, %v; want the deadline", ran, err)
	}
}

func TestDefaultHolderIsUnique(t *testing.T) {
	if a, b := claim.DefaultHolder(), claim.DefaultHolder(); a == b || a == "" {
		t.Errorf("DefaultHolder gave %q and %q", a, b)
	}
}
