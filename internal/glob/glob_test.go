package glob

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		s       string
		want    bool
	}{
		{"registry star matches a deep path with tag", "registry.example.com/*", "registry.example.com/a/b:1", true},
		{"registry star matches a single component", "registry.example.com/*", "registry.example.com/nginx", true},
		{"registry star does not match a lookalike host", "registry.example.com/*", "registry.example.com.evil.io/x", false},
		{"registry star does not match the bare host", "registry.example.com/*", "registry.example.com", false},
		{"registry star matches an empty rest", "registry.example.com/*", "registry.example.com/", true},
		{"leading star matches a subdomain", "*.gcr.io", "eu.gcr.io", true},
		{"leading star matches nested subdomains", "*.gcr.io", "a.b.gcr.io", true},
		{"leading star needs the dot", "*.gcr.io", "gcr.io", false},
		{"leading star is anchored at the end", "*.gcr.io", "eu.gcr.io.evil.com", false},
		{"literal matches only itself", "docker.io/library/nginx", "docker.io/library/nginx", true},
		{"literal does not match a longer string", "docker.io/library/nginx", "docker.io/library/nginx:latest", false},
		{"literal does not match a shorter string", "docker.io/library/nginx", "docker.io/library/ngin", false},
		{"literal does not match another image", "docker.io/library/nginx", "docker.io/library/nginx2", false},
		{"question mark matches one character", "nginx:1.2?", "nginx:1.27", true},
		{"question mark does not match empty", "nginx:1.2?", "nginx:1.2", false},
		{"question mark does not match two characters", "nginx:1.2?", "nginx:1.277", false},
		{"question mark matches a slash", "a?b", "a/b", true},
		{"question mark matches one multibyte character", "caf?", "café", true},
		{"two question marks do not match one multibyte character", "caf??", "café", false},
		{"star crosses slashes", "docker.io/*/nginx", "docker.io/a/b/c/nginx", true},
		{"star matches empty", "docker.io/library/nginx*", "docker.io/library/nginx", true},
		{"double star is a star", "docker.io/**", "docker.io/library/nginx:1.27", true},
		{"double star in the middle", "docker.io/**/nginx:*", "docker.io/library/nginx:1.27", true},
		{"deny list repository", "docker.io/unknown/*", "docker.io/unknown/app:1", true},
		{"deny list repository does not match another user", "docker.io/unknown/*", "docker.io/known/app:1", false},
		{"tag wildcard", "quay.io/prometheus/*:v2.*", "quay.io/prometheus/prometheus:v2.53.0", true},
		{"tag wildcard rejects another major version", "quay.io/prometheus/*:v2.*", "quay.io/prometheus/prometheus:v3.0.0", false},
		{"star needs backtracking", "*a*b", "aaaxbxxab", true},
		{"star backtracking fails cleanly", "*a*b", "aaaxbxxa", false},
		{"star followed by question mark", "*?", "", false},
		{"star followed by question mark matches one", "*?", "x", true},
		{"lone star matches empty", "*", "", true},
		{"lone star matches anything", "*", "anything/at:all@sha256:00", true},
		{"digest suffix", "*@sha256:*", "docker.io/library/nginx@sha256:abc", true},
		{"digest suffix absent", "*@sha256:*", "docker.io/library/nginx:1", false},
		{"pattern longer than input", "abc*def", "abcdef", true},
		{"overlapping prefix and suffix", "abc*cde", "abcde", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.pattern, err)
			}
			if got := p.Match(tc.s); got != tc.want {
				t.Errorf("Compile(%q).Match(%q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
			if got := reference(tc.pattern, tc.s); got != tc.want {
				t.Errorf("reference(%q, %q) = %v, want %v; the test oracle disagrees with the table", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    string
	}{
		{"empty pattern", "", `invalid glob "": pattern is empty`},
		{"space", "docker.io/ nginx", `invalid glob "docker.io/ nginx": pattern contains white space at byte 10`},
		{"trailing newline", "docker.io/*\n", `invalid glob "docker.io/*\n": pattern contains white space at byte 11`},
		{"tab", "\tquay.io/*", `pattern contains white space at byte 0`},
		{"non-breaking space", "quay.io/\u00a0*", `pattern contains white space at byte 8`},
		{"invalid UTF-8", "quay.io/\xff", `invalid glob "quay.io/\xff": pattern is not valid UTF-8`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tc.pattern, p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile(%q) error = %q, want it to contain %q", tc.pattern, err, tc.want)
			}
		})
	}
}

func TestMustCompilePanicsOnInvalidPattern(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustCompile(\"\") did not panic")
		}
	}()
	MustCompile("")
}

func TestAccessors(t *testing.T) {
	tests := []struct {
		name        string
		pattern     string
		literal     string
		isLiteral   bool
		prefix      string
		stringValue string
	}{
		{"plain image is literal", "docker.io/library/nginx", "docker.io/library/nginx", true, "docker.io/library/nginx", "docker.io/library/nginx"},
		{"registry star has the registry as prefix", "registry.example.com/*", "", false, "registry.example.com/", "registry.example.com/*"},
		{"question mark ends the prefix", "nginx:1.2?", "", false, "nginx:1.2", "nginx:1.2?"},
		{"leading star has no prefix", "*.gcr.io", "", false, "", "*.gcr.io"},
		{"double star keeps its spelling in String", "docker.io/**/x", "", false, "docker.io/", "docker.io/**/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := MustCompile(tc.pattern)
			lit, ok := p.Literal()
			if lit != tc.literal || ok != tc.isLiteral {
				t.Errorf("Literal() = %q, %v; want %q, %v", lit, ok, tc.literal, tc.isLiteral)
			}
			if got := p.Prefix(); got != tc.prefix {
				t.Errorf("Prefix() = %q, want %q", got, tc.prefix)
			}
			if got := p.String(); got != tc.stringValue {
				t.Errorf("String() = %q, want %q", got, tc.stringValue)
			}
		})
	}
}

func TestZeroPatternMatchesOnlyEmpty(t *testing.T) {
	var p Pattern
	if !p.Match("") || p.Match("x") {
		t.Errorf("zero Pattern: Match(\"\") = %v, Match(\"x\") = %v; want true, false", p.Match(""), p.Match("x"))
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	p := MustCompile("registry.example.com/*/team-?/*:v1.*")
	s := "registry.example.com/docker.io/team-a/app:v1.2.3"
	if !p.Match(s) {
		t.Fatalf("%q does not match %q", p, s)
	}
	if n := testing.AllocsPerRun(100, func() { p.Match(s) }); n != 0 {
		t.Errorf("Match allocated %v times per call, want 0", n)
	}
}

// TestMatchIsNotExponential uses a pattern for which naive backtracking
// tries C(2000, 20) ways to place the stars and would never finish; the
// greedy matcher needs at most len(pattern)·len(s) steps. No clock is
// involved: a regression shows up as this test hanging until go test's
// -timeout ends it.
func TestMatchIsNotExponential(t *testing.T) {
	p := MustCompile(strings.Repeat("*a", 20) + "*b")
	s := strings.Repeat("a", 2000)
	if p.Match(s) {
		t.Fatalf("%q should not match %d a's", p, len(s))
	}
	if !p.Match(s + "b") {
		t.Fatalf("%q should match %d a's and a b", p, len(s))
	}
}

// reference is the test oracle: the definition of the pattern language
// written as plain recursion over (pattern, string) positions, memoised so
// that fuzzed inputs with many stars stay fast.
func reference(pattern, s string) bool {
	memo := map[[2]int]bool{}
	var match func(pi, si int) bool
	match = func(pi, si int) bool {
		key := [2]int{pi, si}
		if v, ok := memo[key]; ok {
			return v
		}
		var result bool
		switch {
		case pi == len(pattern):
			result = si == len(s)
		case pattern[pi] == '*':
			// '*' matches nothing, or one more character and stays.
			result = match(pi+1, si)
			if !result && si < len(s) {
				_, n := utf8.DecodeRuneInString(s[si:])
				result = match(pi, si+n)
			}
		case si == len(s):
			result = false
		case pattern[pi] == '?':
			_, n := utf8.DecodeRuneInString(s[si:])
			result = match(pi+1, si+n)
		default:
			result = pattern[pi] == s[si] && match(pi+1, si+1)
		}
		memo[key] = result
		return result
	}
	return match(0, 0)
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"registry.example.com/*", "registry.example.com/a/b:1"},
		{"registry.example.com/*", "registry.example.com.evil.io/x"},
		{"*.gcr.io", "eu.gcr.io"},
		{"docker.io/library/nginx", "docker.io/library/nginx"},
		{"nginx:1.2?", "nginx:1.2"},
		{"*a*b", "aaaxbxxab"},
		{"caf??", "café"},
		{"**?*", "é\xff"},
		{"a**?**b", "a\u00e9b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		if got, want := p.Match(s), reference(pattern, s); got != want {
			t.Fatalf("Compile(%q).Match(%q) = %v, reference says %v", pattern, s, got, want)
		}
		if lit, ok := p.Literal(); ok && p.Match(s) != (s == lit) {
			t.Fatalf("literal pattern %q: Match(%q) = %v", pattern, s, p.Match(s))
		}
		if p.Match(s) && !strings.HasPrefix(s, p.Prefix()) {
			t.Fatalf("Compile(%q).Match(%q) is true but %q lacks the prefix %q", pattern, s, s, p.Prefix())
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct{ name, pattern, s string }{
		{"literal", "docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"},
		{"registry star hit", "registry.example.com/*", "registry.example.com/docker.io/library/nginx:1.27"},
		{"registry star miss", "registry.example.com/*", "docker.io/library/nginx:1.27"},
		{"leading star", "*.gcr.io/*", "europe-west1.gcr.io/project/app:v1"},
		{"many stars miss", strings.Repeat("*a", 8) + "*b", strings.Repeat("a", 256)},
	}
	for _, c := range cases {
		p := MustCompile(c.pattern)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match(c.s)
			}
		})
	}
}
