package config

import (
	"testing"
	"time"
)

// TestPresenceCacheTTLs checks mirroring.presenceCache: its defaults, the
// values it is given (0s included), and the values it refuses, each
// named by key path and line.
func TestPresenceCacheTTLs(t *testing.T) {
	loads := []struct {
		name               string
		doc                string
		positive, negative time.Duration
	}{
		{"unset takes the short defaults", "targetRegistry: registry.example.com\n", 30 * time.Second, 10 * time.Second},
		{"both are read", "mirroring:\n  presenceCache: {positiveTTL: 2m, negativeTTL: 1500ms}\n", 2 * time.Minute, 1500 * time.Millisecond},
		{"one set leaves the other at its default", "mirroring:\n  presenceCache:\n    positiveTTL: 5s\n", 5 * time.Second, 10 * time.Second},
		{"0s turns the cache off", "mirroring:\n  presenceCache: {positiveTTL: 0s, negativeTTL: 0s}\n", 0, 0},
	}
	for _, c := range loads {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("config.yaml", []byte(c.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p, n := cfg.PresenceTTLs(); p != c.positive || n != c.negative {
				t.Errorf("PresenceTTLs() = %v, %v; want %v, %v", p, n, c.positive, c.negative)
			}
		})
	}
	refusals := []struct {
		name, doc, want string
	}{
		{"a negative positiveTTL", "mirroring:\n  presenceCache:\n    positiveTTL: -1s\n", `config.yaml: line 3: mirroring.presenceCache.positiveTTL: -1s must not be negative; 0s asks the registry at every admission`},
		{"a negative negativeTTL", "mirroring:\n  presenceCache:\n    negativeTTL: -5m\n", `config.yaml: line 3: mirroring.presenceCache.negativeTTL: -5m0s must not be negative; 0s asks the registry at every admission`},
		{"a duration without unit", "mirroring:\n  presenceCache:\n    positiveTTL: 30\n", `config.yaml: line 3: mirroring.presenceCache.positiveTTL: expected a duration such as 5s or 1500ms, got the number 30`},
		{"words are not a duration", "mirroring:\n  presenceCache:\n    negativeTTL: ten seconds\n", `config.yaml: line 3: mirroring.presenceCache.negativeTTL: "ten seconds" is not a duration such as 5s or 1500ms`},
		{"a misspelt key gets a suggestion", "mirroring:\n  presenceCache:\n    positiveTtl: 1s\n", `config.yaml: line 3: mirroring.presenceCache.positiveTtl: unknown key (did you mean "positiveTTL"?)`},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("config.yaml", []byte(c.doc))
			if err == nil {
				t.Fatalf("Parse = %+v, want error %q", cfg, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n%s\nwant\n%s", err, c.want)
			}
		})
	}
}

// TestConcurrencyLoads checks that mirroring.concurrency, the schema's one
// integer, loads from YAML (it once failed with "cannot decode a value of
// Go type int") and that a non-number is refused with its key path.
func TestConcurrencyLoads(t *testing.T) {
	cfg, err := Parse("config.yaml", []byte("mirroring:\n  concurrency: 8\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Mirroring.Concurrency != 8 {
		t.Errorf("mirroring.concurrency = %d, want 8", cfg.Mirroring.Concurrency)
	}
	for doc, want := range map[string]string{
		"mirroring:\n  concurrency: eight\n": `config.yaml: line 2: mirroring.concurrency: expected a whole number, got the string "eight"`,
		"mirroring:\n  concurrency: 2.5\n":   `config.yaml: line 2: mirroring.concurrency: expected a whole number, got the number 2.5`,
		"mirroring:\n  concurrency: 65\n":    `config.yaml: line 2: mirroring.concurrency: 65 must be between 1 and 64 (0 means the default, 4)`,
	} {
		if _, err := Parse("config.yaml", []byte(doc)); err == nil || err.Error() != want {
			t.Errorf("Parse(%q) error\n%v\nwant\n%s", doc, err, want)
		}
	}
}
