package config

import (
	"strings"
	"testing"
	"time"
)

func TestStoreSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"an empty section takes the defaults", "store: {}\n", ""},
		{"postgres with a DSN file", "store:\n  driver: postgres\n  dsnFile: /etc/dsn\n  retention: 30d\n", ""},
		{"an unknown driver is named", "store:\n  driver: mysql\n", `store.driver: "mysql" is not one of sqlite, postgres`},
		{"the other driver's keys are allowed", "store:\n  driver: sqlite\n  path: /x.db\n  dsnEnv: DB\n", ""},
		{"both DSN sources", "store:\n  driver: postgres\n  dsnEnv: DB\n  dsnFile: /f\n", "store.dsnFile: set either"},
		{"a bad variable name", "store:\n  driver: postgres\n  dsnEnv: 'my-db'\n", `store.dsnEnv: "my-db" is not an environment variable name`},
		{"a bad retention", "store:\n  retention: 3 months\n", `store.retention: "3 months" is not a retention`},
		{"a too short retention", "store:\n  retention: 30m\n", "store.retention: 30m is shorter than the minimum"},
		{"an unknown key", "store:\n  dsn: postgres://u:p@h/db\n", "store.dsn: unknown key"},
	} {
		_, err := Parse("config.yaml", []byte(tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestStoreDefaults(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/state")
	var s *Store
	if p, _ := s.SQLitePath(); p != "/var/state/image-swapper/state.db" {
		t.Errorf("default path %q", p)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/ops")
	if p, _ := s.SQLitePath(); p != "/home/ops/.local/state/image-swapper/state.db" {
		t.Errorf("fallback path %q", p)
	}
	if s.EffectiveDriver() != "sqlite" || s.RetentionDuration() != 90*24*time.Hour {
		t.Errorf("defaults: %s, %s", s.EffectiveDriver(), s.RetentionDuration())
	}
	t.Setenv(DefaultDSNEnv, "postgres://u:secret@h/db")
	if d, err := s.DSN(); err != nil || d != "postgres://u:secret@h/db" {
		t.Errorf("DSN from the default variable: %q, %v", d, err)
	}
	t.Setenv(DefaultDSNEnv, "")
	if _, err := s.DSN(); err == nil || !strings.Contains(err.Error(), DefaultDSNEnv) {
		t.Errorf("a missing DSN gave %v, want an error naming the variable", err)
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "0d": 0} {
		if got, err := ParseRetention(in); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "1.5d", "90", "x1d", "1d-1h"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"90d", "1d12h", "36h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetention(s)
		if err == nil && d < 0 {
			t.Errorf("%q parsed to a negative %v", s, d)
		}
	})
}
