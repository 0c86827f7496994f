package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenPostgres connects to the PostgreSQL database dsn names (a URL or
// key=value string) and migrates its schema; several processes may share
// the database. A schema newer than this binary knows is refused with
// ErrSchemaTooNew and not modified. Errors never contain the DSN or its
// password.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	redact := redactor(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: the DSN does not parse: %w", redact(err))
	}
	where := fmt.Sprintf("postgres %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: connecting: %w", where, redact(err))
	}
	if err := migrate(ctx, db, postgresDialect, where); err != nil {
		db.Close()
		return nil, redact(err)
	}
	return newSQLStore(db, postgresDialect, where, redact), nil
}

// redactedError is an error whose message had secrets removed; the chain
// below it is dropped, as its messages would carry them again.
type redactedError struct {
	msg string
	// is keeps errors.Is working for the sentinels callers test.
	is []error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool {
	for _, s := range e.is {
		if s == target {
			return true
		}
	}
	return false
}

var passwordPattern = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactor returns a function that removes dsn, its password and any
// password= setting from an error's message.
func redactor(dsn string) func(error) error {
	var secrets []string
	if dsn != "" {
		secrets = append(secrets, dsn)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if m := passwordPattern.FindStringSubmatch(dsn); m != nil {
		secrets = append(secrets, strings.Trim(m[2], "'"))
	}
	return func(err error) error {
		if err == nil {
			return nil
		}
		msg := err.Error()
		for _, s := range secrets {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, "[REDACTED]")
			}
		}
		msg = passwordPattern.ReplaceAllString(msg, "${1}[REDACTED]")
		var is []error
		for _, s := range []error{ErrSchemaTooNew, context.Canceled, context.DeadlineExceeded, sql.ErrConnDone} {
			if errors.Is(err, s) {
				is = append(is, s)
			}
		}
		return &redactedError{msg: msg, is: is}
	}
}
