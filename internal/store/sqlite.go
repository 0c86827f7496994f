package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	// The pure-Go SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"
)

// OpenSQLite opens (creating it and its directory if needed) the SQLite
// ledger at path, in WAL mode, and migrates its schema. A file whose schema
// is newer than this binary knows is refused with ErrSchemaTooNew and not
// modified: its version is read over a read-only connection before anything
// else touches it.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	where := "sqlite " + path
	if _, err := os.Stat(path); err == nil {
		if err := checkSQLiteVersion(ctx, path, where); err != nil {
			return nil, err
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("%s: creating its directory: %w", where, err)
		}
	} else {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// busy_timeout: readers (image-swapper audit) and the pruner share the
	// file with the writer. synchronous(NORMAL) in WAL mode loses nothing
	// on a process crash, only possibly the last commits on power loss.
	// _txlock=immediate takes the write lock at BEGIN, so that two writing
	// transactions queue instead of failing on upgrade.
	db, err := sql.Open("sqlite", sqliteURI(path)+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	db.SetMaxOpenConns(4)
	if err := migrate(ctx, db, sqliteDialect, where); err != nil {
		db.Close()
		return nil, err
	}
	return newSQLStore(db, sqliteDialect, where, nil), nil
}

// sqliteURI is the file: URI of path, with the characters URIs reserve
// escaped.
func sqliteURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

func checkSQLiteVersion(ctx context.Context, path, where string) error {
	// Reading a WAL database creates its -wal and -shm files; remove
	// those this check created (they hold nothing), so that a refused
	// database's directory is left as it was.
	var created []string
	for _, f := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			created = append(created, f)
		}
	}
	defer func() {
		for _, f := range created {
			if st, err := os.Stat(f); err == nil && (st.Size() == 0 || strings.HasSuffix(f, "-shm")) {
				os.Remove(f)
			}
		}
	}()
	db, err := sql.Open("sqlite", sqliteURI(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer db.Close()
	v, err := readVersion(ctx, db, sqliteDialect)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return checkVersion(v, where)
}
