package workload

import (
	"encoding/json"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestDoubleQuotedReadsBackInYAMLAndJSON(t *testing.T) {
	tests := []struct{ name, value string }{
		{"a registry reference", "registry.example.com/a/b:1@sha256:00ff"},
		{"quotes and backslashes", `a"b\c`},
		{"control characters", "a\x00b\x01\x1f\x7fc\n\t\r"},
		{"line and paragraph separators and NEL", "a\u2028b\u2029c\u0085d"},
		{"a byte order mark and non-characters", "\ufeffa\ufffe\uffff"},
		{"letters outside ASCII and the BMP", "ünïcödé/日本:1-😀"},
		{"C1 controls", "a\u0080\u009fb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := appendDoubleQuoted(nil, tt.value)
			var y string
			if err := yaml.Unmarshal(q, &y); err != nil || y != tt.value {
				t.Errorf("YAML reads %s as %q (%v), want %q", q, y, err, tt.value)
			}
			var j string
			if err := json.Unmarshal(q, &j); err != nil || j != tt.value {
				t.Errorf("JSON reads %s as %q (%v), want %q", q, j, err, tt.value)
			}
		})
	}
}

func TestSingleQuotedOnlyWhenItCan(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"it's/fine:1", true},
		{"tab\there", false},
		{"new\nline", false},
		{"line\u2028separator", false},
	}
	for _, tt := range tests {
		if got := singleQuotable(tt.value); got != tt.want {
			t.Errorf("singleQuotable(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}
