package importer

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/rules"
)

// The expectations are what CPython's fnmatch.fnmatch returns on POSIX.
func TestFnmatchRegexpAgreesWithPython(t *testing.T) {
	tests := []struct {
		name, s, pat string
		want         bool
	}{
		{"a star matches a suffix", "hello-world", "hello-*", true},
		{"a star runs across the tag separator", "ubutun:18.04", "ubut*18.04", true},
		{"a star runs across a slash", "a/b/c", "a*", true},
		{"a question mark matches one character", "ab", "a?", true},
		{"a question mark needs a character", "a", "a?", false},
		{"a dot is literal", "axb", "a.b", false},
		{"matching is case-sensitive", "A", "a", false},
		{"a star matches a newline", "a\nb", "a*b", true},
		{"a class matches a member", "b", "[abc]", true},
		{"a range matches inside it", "b", "[a-c]", true},
		{"a reversed range matches nothing", "b", "[c-a]", false},
		{"a negated class excludes its members", "x", "[!x]", false},
		{"a negated class matches the rest", "y", "[!x]", true},
		{"a bracket first in a class is a member", "]", "[]]", true},
		{"a dash last in a class is a member", "-", "[a-]", true},
		{"an unclosed bracket is literal", "[ab", "[ab", true},
		{"[!] without another bracket is literal", "[!]", "[!]", true},
		{"a bracket after [! is a member of the negated class", "!", "[!]x]", true},
		{"regexp metacharacters are literal", "a+b(c)", "a+b(c)", true},
		{"a backslash is literal", `a\b`, `a\b`, true},
		{"the whole string must match", "nginx:latest", "nginx", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := regexp.MustCompile(fnmatchRegexp(tt.pat))
			if got := re.MatchString(tt.s); got != tt.want {
				t.Errorf("fnmatch(%q, %q) = %v, want %v (regexp %s)", tt.s, tt.pat, got, tt.want, re)
			}
		})
	}
}

func TestParseMapsLineReadsLinesAsImageSwapDoes(t *testing.T) {
	tests := []struct {
		name, line string
		want       *mapsEntry // nil: comment or blank
		invalid    bool
	}{
		{"a comment is skipped", "# quay.io::x", nil, false},
		{"a blank line is skipped", "   ", nil, false},
		{"an indented comment leaves nothing", "   # x", nil, false},
		{"the new separator splits key and value", "quay.io::mirror", &mapsEntry{key: "quay.io", val: "mirror"}, false},
		{"the old separator still works", "quay.io:mirror", &mapsEntry{key: "quay.io", val: "mirror"}, false},
		{"spaces are removed everywhere", " quay.io ::  mir ror ", &mapsEntry{key: "quay.io", val: "mirror"}, false},
		{"tabs are not removed", "quay.io\t::mirror", &mapsEntry{key: "quay.io\t", val: "mirror"}, false},
		{"only the last comment is cut", "a::b # c # d", &mapsEntry{key: "a", val: "b#c"}, false},
		{"a run of # is one comment", "a::b ###### c", &mapsEntry{key: "a", val: "b"}, false},
		{"an empty value is kept", "cool.io::", &mapsEntry{key: "cool.io", val: ""}, false},
		{"[EXACT] goes to the exact maps", "[EXACT]nginx::m/nginx", &mapsEntry{kind: kindExact, key: "nginx", val: "m/nginx"}, false},
		{"[REPLACE] goes to the replace maps", "[REPLACE]a*::b", &mapsEntry{kind: kindReplace, key: "a*", val: "b"}, false},
		{"three colons split after the first two", ":::", &mapsEntry{key: "", val: ":"}, false},
		{"a port needs the new separator", "a.com:5000:b", nil, true},
		{"two separators are invalid", "a::b::c", nil, true},
		{"no separator is invalid", "a;b", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := parseMapsLine(tt.line)
			if (reason != "") != tt.invalid {
				t.Fatalf("parseMapsLine(%q) reason = %q, want invalid %v", tt.line, reason, tt.invalid)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMapsLine(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestSplitPythonLinesTreatsCRLFAndCRAsLineEnds(t *testing.T) {
	got := splitPythonLines("a\r\nb\rc\nd")
	want := []string{"a", "b", "c", "d"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitPythonLines = %q, want %q", got, want)
	}
}

func TestTranslateFilterRecognisesTheDocumentedFilters(t *testing.T) {
	tests := []struct {
		name, expr string
		want       filterPlan
	}{
		{"namespace equality excludes the namespace", "obj.metadata.namespace == 'kube-system'",
			filterPlan{exclude: []string{"kube-system"}}},
		{"equality reads either way round", "'kube-system' == obj.metadata.namespace",
			filterPlan{exclude: []string{"kube-system"}}},
		{"a JSON string literal is a string", "obj.metadata.namespace == `\"kube-system\"`",
			filterPlan{exclude: []string{"kube-system"}}},
		{"an or of equalities excludes each", "obj.metadata.namespace == 'a' || obj.metadata.namespace == 'b'",
			filterPlan{exclude: []string{"a", "b"}}},
		{"contains over a list excludes each", "contains(['a', 'b'], obj.metadata.namespace) == `true`",
			filterPlan{exclude: []string{"a", "b"}}},
		{"ends_with becomes a suffix wildcard", "ends_with(obj.metadata.namespace,'-dev')",
			filterPlan{exclude: []string{"*-dev"}}},
		{"starts_with becomes a prefix wildcard", "starts_with(obj.metadata.namespace, 'tmp-')",
			filterPlan{exclude: []string{"tmp-*"}}},
		{"inequality limits swapping to the namespace", "obj.metadata.namespace != 'playground'",
			filterPlan{onlyIn: [][]string{{"playground"}}}},
		{"a negated list limits swapping to the list", "!contains(['a', 'b'], obj.metadata.namespace)",
			filterPlan{onlyIn: [][]string{{"a", "b"}}}},
		{"image tests become a CEL condition", "contains(container.image, '.dkr.ecr.') && contains(container.image, '.amazonaws.com')",
			filterPlan{skip: []string{"(image.reference.contains('.dkr.ecr.') && image.reference.contains('.amazonaws.com'))"}}},
		{"a label test guards the missing label", "obj.metadata.labels.team == 'a'",
			filterPlan{skip: []string{"('team' in object.labels && object.labels['team'] == 'a')"}}},
		{"a quoted label key is read", `obj.metadata.labels."app.kubernetes.io/name" != 'x'`,
			filterPlan{skip: []string{"!('app.kubernetes.io/name' in object.labels && object.labels['app.kubernetes.io/name'] == 'x')"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plan filterPlan
			if _, err := translateFilter(tt.expr, &plan); err != nil {
				t.Fatalf("translateFilter(%q): %v", tt.expr, err)
			}
			if !reflect.DeepEqual(plan, tt.want) {
				t.Errorf("translateFilter(%q) = %+v, want %+v", tt.expr, plan, tt.want)
			}
			for _, s := range plan.skip {
				if _, err := rules.CompileCondition("!" + wrap(s)); err != nil {
					t.Errorf("the condition %q does not compile: %v", s, err)
				}
			}
		})
	}
}

func TestTranslateFilterRefusesWhatItCannotRead(t *testing.T) {
	for _, expr := range []string{
		"container.name == 'istio-proxy'",
		"length(obj.spec.containers) > `3`",
		"obj.spec.containers[0].image == 'x'",
		"obj.metadata.namespace",
		"starts_with(obj.metadata.namespace",
		"obj.metadata.namespace == 'a' | foo",
		"'unterminated",
		strings.Repeat("(", 500) + "true" + strings.Repeat(")", 500),
		strings.Repeat("!", 500) + "true",
	} {
		t.Run(expr[:min(len(expr), 40)], func(t *testing.T) {
			var plan filterPlan
			_, err := translateFilter(expr, &plan)
			if !errors.Is(err, errJMESPath) {
				t.Errorf("translateFilter(%q) error = %v, want errJMESPath", expr, err)
			}
			if !reflect.DeepEqual(plan, filterPlan{}) {
				t.Errorf("a refused filter changed the plan: %+v", plan)
			}
		})
	}
}

func TestFindingStringReadsLikeADiagnostic(t *testing.T) {
	tests := []struct {
		name string
		f    Finding
		want string
	}{
		{"a MAPS line", Finding{Line: 7, Input: "[REPLACE]x::y", Reason: "why", source: "MAPS"}, "MAPS:7: `[REPLACE]x::y`: why"},
		{"a config option", Finding{Line: 12, Input: "target.aws.role", Reason: "why", source: "config"}, "config:12: `target.aws.role`: why"},
		{"a note on the whole file", Finding{Reason: "why", source: "MAPS"}, "MAPS: why"},
		{"a finding made by hand", Finding{Line: 1, Reason: "why"}, "input:1: why"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestImageSwapRejectsInputThatIsNotUTF8(t *testing.T) {
	_, _, err := ImageSwap([]byte("default::\xff\n"))
	if !errors.Is(err, errNotUTF8) {
		t.Errorf("ImageSwap(invalid UTF-8) error = %v, want errNotUTF8", err)
	}
}

func TestK8sImageSwapperRejectsConfigsItCannotTranslate(t *testing.T) {
	const aws = "target:\n  aws:\n    accountId: '1'\n    region: r\n"
	tests := []struct{ name, in, want string }{
		{"an empty file", "", "empty"},
		{"a file that is not YAML", "a: [", "not valid YAML"},
		{"a list instead of a mapping", "- a\n", "not a YAML mapping"},
		{"no target", "dryRun: true\n", "has no target"},
		{"a generic target", "target:\n  type: generic\n", `target.type "generic"`},
		{"an AWS target without region", "target:\n  aws:\n    accountId: '1'\n", "needs accountId and region"},
		{"a GCP target without repository", "target:\n  type: gcp\n  gcp:\n    location: us\n    projectId: p\n", "needs location, projectId and repositoryId"},
		{"a key set twice in different case", "dryRun: true\nDRYRUN: false\n" + aws, "set twice"},
		{"a target that is no registry host", "target:\n  aws:\n    accountId: 'a b'\n    region: r\n", "not a valid registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := K8sImageSwapper([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "importer: ") {
				t.Errorf("K8sImageSwapper(%q) error = %v, want one starting with \"importer: \" that mentions %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestK8sImageSwapperNeverRepeatsCredentials(t *testing.T) {
	data, err := os.ReadFile("testdata/k8s-image-swapper/source-registries-generic.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, fs, err := K8sImageSwapper(data)
	if err != nil {
		t.Fatal(err)
	}
	all := fmt.Sprintf("%+v", cfg)
	for _, f := range fs {
		all += f.String()
	}
	for _, secret := range []string{"s3cr3t-password", "user"} {
		if strings.Contains(all, secret) {
			t.Errorf("the translation or its findings contain the credential %q:\n%s", secret, all)
		}
	}
}

func TestImportIsDeterministic(t *testing.T) {
	data, err := os.ReadFile("testdata/imageswap/docs-example.maps")
	if err != nil {
		t.Fatal(err)
	}
	cfg1, fs1, _ := ImageSwap(data)
	cfg2, fs2, _ := ImageSwap(data)
	if !reflect.DeepEqual(cfg1, cfg2) || !reflect.DeepEqual(fs1, fs2) {
		t.Error("two imports of one MAPS file differ")
	}
}

func BenchmarkImageSwapDocsExample(b *testing.B) {
	data, err := os.ReadFile("testdata/imageswap/docs-example.maps")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ImageSwap(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkK8sImageSwapperRepoExample(b *testing.B) {
	data, err := os.ReadFile("testdata/k8s-image-swapper/repo-example.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := K8sImageSwapper(data); err != nil {
			b.Fatal(err)
		}
	}
}
