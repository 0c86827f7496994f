package workload

import (
	"fmt"
	"strings"
	"testing"
)

func (jp jsonPath) String() string {
	var b strings.Builder
	for _, s := range jp.steps {
		switch s.kind {
		case stepField:
			fmt.Fprintf(&b, "<%s>", s.name)
		case stepIndex:
			fmt.Fprintf(&b, "[%d]", s.index)
		case stepWildcard:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

func TestParseJSONPathAcceptsWhatKubectlAndReimageUsersWrite(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"kubectl braces", "{.spec.image}", "<spec><image>"},
		{"a bare dotted path", ".spec.image", "<spec><image>"},
		{"reimage's dollar form", "$.spec.image", "<spec><image>"},
		{"dollar inside braces", "{$.spec.image}", "<spec><image>"},
		{"kubectl's relaxed form without a leading dot", "spec.image", "<spec><image>"},
		{"a wildcard over a list", "{.spec.containers[*].image}", "<spec><containers>[*]<image>"},
		{"an index", ".spec.sidecars[0].image", "<spec><sidecars>[0]<image>"},
		{"a negative index counts from the end", ".spec.sidecars[-1].image", "<spec><sidecars>[-1]<image>"},
		{"a dot wildcard", ".spec.images.*", "<spec><images>[*]"},
		{"a single-quoted name with dots", "{.metadata.annotations['example.com/image']}", "<metadata><annotations><example.com/image>"},
		{"a double-quoted name", `.metadata.annotations["a'b"]`, "<metadata><annotations><a'b>"},
		{"a bracket after a dot", ".spec.['odd name']", "<spec><odd name>"},
		{"an escaped dot", `.metadata.labels.example\.com/x`, "<metadata><labels><example.com/x>"},
		{"surrounding spaces", "  { .spec.image }  ", "<spec><image>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jp, err := parseJSONPath(tt.expr)
			if err != nil {
				t.Fatalf("parseJSONPath(%q): %v", tt.expr, err)
			}
			if got := jp.String(); got != tt.want {
				t.Errorf("parseJSONPath(%q) = %s, want %s", tt.expr, got, tt.want)
			}
		})
	}
}

func TestParseJSONPathRefusesWhatItDoesNotSupport(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"recursive descent", "$..image", "recursive descent"},
		{"a filter", ".spec.containers[?(@.name=='a')].image", "filter"},
		{"a slice", ".spec.containers[0:1].image", "slices"},
		{"a union of indexes", ".spec.containers[0,1].image", "unions"},
		{"a union of names", ".spec['a','b']", "unions"},
		{"range", "{range .items[*]}{.image}{end}", "range"},
		{"two templates", "{.a}{.b}", "only one"},
		{"an unclosed brace", "{.spec.image", "without closing"},
		{"an unclosed bracket", ".spec.containers[0", "unterminated"},
		{"an unclosed quote", ".spec['image", "unterminated"},
		{"the whole object", "$", "whole object"},
		{"an empty expression", "", "whole object"},
		{"a trailing dot", ".spec.", "trailing '.'"},
		{"an empty field", ".spec..", "recursive descent"},
		{"a function", ".spec.containers.length()", "unexpected '('"},
		{"a non-numeric index", ".spec.containers[x]", "unexpected 'x'"},
		{"a bad negative index", ".spec.containers[-]", "expected an index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jp, err := parseJSONPath(tt.expr)
			if err == nil {
				t.Fatalf("parseJSONPath(%q) = %s, want an error", tt.expr, jp)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseJSONPath(%q) error %q does not mention %q", tt.expr, err, tt.want)
			}
		})
	}
}
