package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSQLiteClaims(t *testing.T) { testClaims(t, sqliteOpener(t)) }

func TestPostgresClaims(t *testing.T) {
	open, _ := postgresOpener(t)
	testClaims(t, open)
}

func testClaims(t *testing.T, open opener) {
	ctx := context.Background()
	s := open(t)
	t.Run("a claim is one holder's until released", func(t *testing.T) {
		mustClaim(t, s, "copy", "reg/a:1", "A", true, "A")
		mustClaim(t, s, "copy", "reg/a:1", "B", false, "A")
		// Claiming again what one holds renews it.
		mustClaim(t, s, "copy", "reg/a:1", "A", true, "A")
		// Kinds and keys are separate claims.
		mustClaim(t, s, "scan", "reg/a:1", "B", true, "B")
		mustClaim(t, s, "copy", "reg/a:2", "B", true, "B")
		if ok, err := s.Renew(ctx, "copy", "reg/a:1", "A", time.Minute); err != nil || !ok {
			t.Errorf("the holder's Renew = %v, %v; want true", ok, err)
		}
		if ok, err := s.Renew(ctx, "copy", "reg/a:1", "B", time.Minute); err != nil || ok {
			t.Errorf("another's Renew = %v, %v; want false", ok, err)
		}
		if err := s.Release(ctx, "copy", "reg/a:1", "B"); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "copy", "reg/a:1", "B", false, "A")
		if err := s.Release(ctx, "copy", "reg/a:1", "A"); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "copy", "reg/a:1", "B", true, "B")
		if ok, _ := s.Renew(ctx, "copy", "reg/a:1", "A", time.Minute); ok {
			t.Error("a released claim was renewed by its old holder")
		}
	})
	t.Run("an expired claim is taken over", func(t *testing.T) {
		if won, _, err := s.Claim(ctx, "scan", "sha256:dead", "dead", 50*time.Millisecond); err != nil || !won {
			t.Fatalf("Claim = %v, %v", won, err)
		}
		mustClaim(t, s, "scan", "sha256:dead", "B", false, "dead")
		time.Sleep(100 * time.Millisecond)
		mustClaim(t, s, "scan", "sha256:dead", "B", true, "B")
		if ok, err := s.Renew(ctx, "scan", "sha256:dead", "dead", time.Minute); err != nil || ok {
			t.Errorf("the old holder's Renew after a takeover = %v, %v; want false", ok, err)
		}
		// A holder that renews in time keeps it past its first TTL.
		if won, _, err := s.Claim(ctx, "scan", "sha256:kept", "A", 300*time.Millisecond); err != nil || !won {
			t.Fatalf("Claim = %v, %v", won, err)
		}
		for range 3 {
			time.Sleep(150 * time.Millisecond)
			if ok, err := s.Renew(ctx, "scan", "sha256:kept", "A", 300*time.Millisecond); err != nil || !ok {
				t.Fatalf("Renew = %v, %v", ok, err)
			}
			mustClaim(t, s, "scan", "sha256:kept", "B", false, "A")
		}
	})
	t.Run("prune deletes claims that lapsed before the cut", func(t *testing.T) {
		if _, _, err := s.Claim(ctx, "copy", "reg/old:1", "A", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "copy", "reg/live:1", "A", true, "A")
		time.Sleep(10 * time.Millisecond)
		if _, err := s.Prune(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.(*sqlStore).db.QueryRowContext(ctx, `SELECT COUNT(*) FROM claims WHERE claim_key = 'reg/old:1'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("lapsed claims after Prune: %d, %v; want 0", n, err)
		}
		mustClaim(t, s, "copy", "reg/live:1", "B", false, "A")
	})
}

func mustClaim(t *testing.T, s Store, kind, key, holder string, wantWon bool, wantHolder string) {
	t.Helper()
	won, current, err := s.Claim(context.Background(), kind, key, holder, time.Minute)
	if err != nil || won != wantWon || current != wantHolder {
		t.Errorf("%s claims %s %s: won %v, holder %q, %v; want %v, %q", holder, kind, key, won, current, err, wantWon, wantHolder)
	}
}

// TestPostgresClaimsRace claims each key from many goroutines over two
// connections pools at once: one of them wins it.
func TestPostgresClaimsRace(t *testing.T) {
	open, _ := postgresOpener(t)
	stores := []Store{open(t), open(t)}
	ctx := context.Background()
	const keys, claimers = 20, 16
	for k := range keys {
		key := fmt.Sprintf("sha256:%02d", k)
		if k%2 == 1 {
			// Half the keys race over an expired claim instead.
			if _, _, err := stores[0].Claim(ctx, "scan", key, "dead", time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range claimers {
			wg.Go(func() {
				<-start
				won, _, err := stores[i%2].Claim(ctx, "scan", key, fmt.Sprint("replica-", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("%s: %d claimers won, want 1", key, n)
		}
	}
}

// TestSQLiteMigratesToClaims opens a database of the first schema version
// (as the previous release left it) and finds claims working.
func TestSQLiteMigratesToClaims(t *testing.T) {
	ctx := context.Background()
	open := sqliteOpener(t)
	s := open(t)
	db := s.(*sqlStore).db
	for _, stmt := range []string{`DROP TABLE claims`, `DELETE FROM schema_migrations WHERE version > 1`} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v != knownVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, knownVersion())
	}
	mustClaim(t, s, "copy", "reg/a:1", "A", true, "A")
}
