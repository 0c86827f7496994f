package store

import (
	"context"

	"github.com/image-swapper/image-swapper/internal/config"
)

// Open opens the store the configuration's store section names (nil means
// the defaults: SQLite under $XDG_STATE_HOME).
func Open(ctx context.Context, c *config.Store) (Store, error) {
	if c.EffectiveDriver() == string(Postgres) {
		dsn, err := c.DSN()
		if err != nil {
			return nil, err
		}
		return OpenPostgres(ctx, dsn)
	}
	path, err := c.SQLitePath()
	if err != nil {
		return nil, err
	}
	return OpenSQLite(ctx, path)
}
