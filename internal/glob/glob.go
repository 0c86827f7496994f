// Package glob compiles and matches the wildcard patterns of allow/deny
// lists and rule matchers, such as "registry.example.com/*" or "*.gcr.io".
//
// '*' matches any run of characters, '/' included, and "**" means the same
// as '*'; '?' matches exactly one character (one UTF-8 encoded rune);
// everything else matches itself. There is no escaping and no character
// class: image references contain neither '*' nor '?', so none is needed.
//
// Matching is a greedy scan that remembers only the last '*' and retries
// from there, so it takes at most O(len(pattern)·len(s)) steps, never
// backtracks exponentially and does not allocate.
package glob

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pattern is a compiled wildcard: '*' matches any run of characters including
// '/', '?' exactly one character; everything else literal.
//
// The zero Pattern matches only the empty string.
type Pattern struct {
	src    string // as written, for String
	expr   string // src with runs of '*' collapsed to one
	prefix int    // length of the literal text before the first wildcard in expr
	wild   bool   // expr contains '*' or '?'
}

// Compile checks and compiles a pattern. It fails, naming the pattern, when
// the pattern is empty, contains white space or is not valid UTF-8.
func Compile(p string) (Pattern, error) {
	if p == "" {
		return Pattern{}, fmt.Errorf("invalid glob %q: pattern is empty", p)
	}
	if !utf8.ValidString(p) {
		return Pattern{}, fmt.Errorf("invalid glob %q: pattern is not valid UTF-8", p)
	}
	if i := strings.IndexFunc(p, unicode.IsSpace); i >= 0 {
		return Pattern{}, fmt.Errorf("invalid glob %q: pattern contains white space at byte %d", p, i)
	}
	expr := p
	if strings.Contains(p, "**") {
		expr = collapseStars(p)
	}
	prefix := strings.IndexAny(expr, "*?")
	wild := prefix >= 0
	if !wild {
		prefix = len(expr)
	}
	return Pattern{src: p, expr: expr, prefix: prefix, wild: wild}, nil
}

// MustCompile is Compile for patterns known to be valid, such as constants
// in code; it panics on an invalid pattern.
func MustCompile(p string) Pattern {
	pat, err := Compile(p)
	if err != nil {
		panic(err)
	}
	return pat
}

// collapseStars replaces every run of '*' by a single '*', which matches the
// same strings and keeps matching linear in the number of stars.
func collapseStars(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '*' && i > 0 && p[i-1] == '*' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// Match reports whether the whole of s matches the pattern.
func (p Pattern) Match(s string) bool {
	if !p.wild {
		return s == p.expr
	}
	// The literal prefix must match; checking it first settles most
	// non-matches of "registry.example.com/*" in one comparison.
	if !strings.HasPrefix(s, p.expr[:p.prefix]) {
		return false
	}
	expr := p.expr
	if len(expr) == p.prefix+1 && expr[p.prefix] == '*' {
		return true // "literal/*", the usual allow-list shape
	}
	pi, si := p.prefix, p.prefix
	// Position in expr just after the last '*' seen, and in s where that
	// star's match currently ends; star < 0 means no '*' seen yet.
	star, starEnd := -1, 0
	for si < len(s) || pi < len(expr) {
		if pi < len(expr) {
			switch c := expr[pi]; c {
			case '*':
				pi++
				star, starEnd = pi, si
				continue
			case '?':
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					pi++
					si += n
					continue
				}
			default:
				if si < len(s) && s[si] == c {
					pi++
					si++
					continue
				}
			}
		}
		// Mismatch: let the last '*' swallow one more character and retry
		// the rest of the pattern from there. Earlier stars never need
		// revisiting, because the last one can absorb anything they could.
		if star < 0 || starEnd >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starEnd:])
		starEnd += n
		pi, si = star, starEnd
	}
	return true
}

// String returns the pattern as it was written.
func (p Pattern) String() string { return p.src }

// Literal returns the pattern and true when it has no wildcard, so callers
// can use a map lookup or plain comparison instead of Match.
func (p Pattern) Literal() (string, bool) {
	if p.wild {
		return "", false
	}
	return p.src, true
}

// Prefix returns the literal text before the first wildcard (the whole
// pattern when it has none), for indexing patterns by what they must start with.
func (p Pattern) Prefix() string { return p.expr[:p.prefix] }
