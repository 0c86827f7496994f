package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Claims hand a unit of work, named by a kind ("copy", "scan") and a key
// (a target reference, a manifest digest), to one holder at a time, so
// that replicas sharing a PostgreSQL database do it once. A claim is a
// lease: it lapses at its expiry unless its holder renews it, so that the
// work of a holder that died is taken over.
//
// A claim is a row of the claims table, taken with one atomic INSERT …
// ON CONFLICT DO UPDATE … WHERE the row is expired or already ours: under
// PostgreSQL's row lock two replicas claiming at once cannot both win.
// Rows rather than advisory locks: an advisory lock belongs to a
// connection, so holding one for the length of a copy would pin a pooled
// connection per copy and drop silently with it, and it has no expiry
// for a holder that is alive but stuck and no holder to show; a row works
// with any connection (or pooler), shows who holds what, and is the same
// SQL on SQLite, where one process holds every claim. Expiry is judged by
// the database's clock, so replicas' clocks need not agree.
type Claims interface {
	// Claim takes the claim of kind and key for holder for ttl, when no
	// one else holds it or its holder let it expire; claiming again what
	// holder holds renews it. It returns whether holder now holds it and,
	// when not, who does ("" if the claim went away meanwhile: try again).
	Claim(ctx context.Context, kind, key, holder string, ttl time.Duration) (won bool, current string, err error)
	// Renew extends holder's claim to ttl from now. It returns false when
	// holder no longer holds it (another holder took it over after it
	// expired, or it was released).
	Renew(ctx context.Context, kind, key, holder string, ttl time.Duration) (bool, error)
	// Release gives up holder's claim; releasing a claim one does not
	// hold does nothing.
	Release(ctx context.Context, kind, key, holder string) error
}

// nowMillis is the SQL expression of the database's clock, in Unix
// milliseconds.
func (d *dialect) nowMillis() string {
	if d.name == SQLite {
		return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
	}
	return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
}

// ttlMillis is ttl in milliseconds, at least 1.
func ttlMillis(ttl time.Duration) int64 { return max(ttl.Milliseconds(), 1) }

// Claim implements Claims.
func (s *sqlStore) Claim(ctx context.Context, kind, key, holder string, ttl time.Duration) (bool, string, error) {
	now := s.d.nowMillis()
	var got string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`INSERT INTO claims (kind, claim_key, holder, acquired, expires) VALUES (?, ?, ?, `+now+`, `+now+` + ?)
		ON CONFLICT (kind, claim_key) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
			acquired = CASE WHEN claims.holder = excluded.holder THEN claims.acquired ELSE excluded.acquired END
		WHERE claims.holder = excluded.holder OR claims.expires <= excluded.acquired
		RETURNING holder`), kind, key, holder, ttlMillis(ttl)).Scan(&got)
	switch {
	case err == nil:
		return got == holder, got, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, "", s.wrap("claiming "+kind+" "+key, err)
	}
	// Held by another: say by whom.
	err = s.db.QueryRowContext(ctx, s.d.rebind(`SELECT holder FROM claims WHERE kind = ? AND claim_key = ?`), kind, key).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", nil
	}
	return false, got, s.wrap("reading the claim of "+kind+" "+key, err)
}

// Renew implements Claims.
func (s *sqlStore) Renew(ctx context.Context, kind, key, holder string, ttl time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE claims SET expires = `+s.d.nowMillis()+` + ? WHERE kind = ? AND claim_key = ? AND holder = ?`),
		ttlMillis(ttl), kind, key, holder)
	if err != nil {
		return false, s.wrap("renewing the claim of "+kind+" "+key, err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.wrap("renewing the claim of "+kind+" "+key, err)
}

// Release implements Claims.
func (s *sqlStore) Release(ctx context.Context, kind, key, holder string) error {
	_, err := s.db.ExecContext(ctx, s.d.rebind(`DELETE FROM claims WHERE kind = ? AND claim_key = ? AND holder = ?`), kind, key, holder)
	return s.wrap("releasing the claim of "+kind+" "+key, err)
}
