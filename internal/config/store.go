package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Store defaults.
const (
	DefaultStoreDriver = "sqlite"
	DefaultDSNEnv      = "IMAGE_SWAPPER_DATABASE_URL"
	DefaultRetention   = 90 * 24 * time.Hour
	// MinRetention keeps a typo ("90m" for "90d") from emptying the ledger.
	MinRetention = time.Hour
)

var storeDrivers = []string{"sqlite", "postgres"}

func (c *Config) validateStore(p *problems) {
	s := c.Store
	if s == nil {
		return
	}
	checkEnum(p, "store.driver", s.Driver, storeDrivers)
	// Keys of the other driver are allowed (and unused), so that one file
	// can switch drivers by its driver key alone, as the documented
	// example does.
	if s.DSNEnv != "" && s.DSNFile != "" {
		p.add("store.dsnFile", "set either store.dsnEnv or store.dsnFile, not both")
	}
	if s.DSNEnv != "" && !envName.MatchString(s.DSNEnv) {
		p.add("store.dsnEnv", "%q is not an environment variable name such as IMAGE_SWAPPER_DATABASE_URL", s.DSNEnv)
	}
	if s.Retention != "" {
		if d, err := ParseRetention(s.Retention); err != nil {
			p.add("store.retention", "%v", err)
		} else if d < MinRetention {
			p.add("store.retention", "%s is shorter than the minimum, %s", s.Retention, MinRetention)
		}
	}
}

// ParseRetention parses a retention such as 90d, 36h or 1d12h: an optional
// number of days followed by an optional Go duration.
func ParseRetention(s string) (time.Duration, error) {
	rest := s
	var days time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("%q is not a retention such as 90d, 36h or 1d12h", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest == "" {
		if days == 0 && s != "0d" {
			return 0, fmt.Errorf("%q is not a retention such as 90d, 36h or 1d12h", s)
		}
		return days, nil
	}
	d, err := time.ParseDuration(rest)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a retention such as 90d, 36h or 1d12h", s)
	}
	return days + d, nil
}

// EffectiveDriver is store.driver, default sqlite.
func (s *Store) EffectiveDriver() string {
	if s == nil || s.Driver == "" {
		return DefaultStoreDriver
	}
	return s.Driver
}

// SQLitePath is store.path, default $XDG_STATE_HOME/image-swapper/state.db,
// falling back to ~/.local/state when XDG_STATE_HOME is not set.
func (s *Store) SQLitePath() (string, error) {
	if s != nil && s.Path != "" {
		return s.Path, nil
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("store.path: not set, and no home directory for the default: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "image-swapper", "state.db"), nil
}

// DSN reads the PostgreSQL DSN from store.dsnFile or the variable
// store.dsnEnv names. Errors name where it looked, never the value.
func (s *Store) DSN() (string, error) {
	if s != nil && s.DSNFile != "" {
		b, err := os.ReadFile(s.DSNFile)
		if err != nil {
			return "", fmt.Errorf("store.dsnFile: reading the DSN: %w", err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("store.dsnFile: %s is empty; it should hold a DSN such as postgres://user:password@host/db", s.DSNFile)
		}
		return dsn, nil
	}
	name := DefaultDSNEnv
	if s != nil && s.DSNEnv != "" {
		name = s.DSNEnv
	}
	dsn := strings.TrimSpace(os.Getenv(name))
	if dsn == "" {
		return "", fmt.Errorf("store.dsnEnv: the environment variable %s is not set; it should hold a DSN such as postgres://user:password@host/db", name)
	}
	return dsn, nil
}

// RetentionDuration is store.retention, default 90d.
func (s *Store) RetentionDuration() time.Duration {
	if s == nil || s.Retention == "" {
		return DefaultRetention
	}
	d, err := ParseRetention(s.Retention)
	if err != nil {
		return DefaultRetention
	}
	return d
}
