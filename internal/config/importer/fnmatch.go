package importer

import (
	"strings"
	"unicode/utf8"
)

// ImageSwap's [REPLACE] patterns are Python fnmatch patterns
// (imageswap.py@b596f22, swap_image, L306-310: fnmatch.fnmatch(image,
// pattern)): '*' matches any run of characters, '/' included, '?' one
// character, "[seq]" one character of seq and "[!seq]" one character not in
// it; there is no escape character, and a '[' without a closing ']' is a
// literal. The tokens below follow CPython's fnmatch._translate.

type fnKind int

const (
	fnLiteral fnKind = iota
	fnStar
	fnAny   // '?'
	fnClass // [seq] or [!seq]
)

type fnRange struct{ lo, hi rune }

type fnToken struct {
	kind   fnKind
	r      rune      // fnLiteral
	negate bool      // fnClass
	ranges []fnRange // fnClass; an empty, non-negated class matches nothing
}

// fnTokens splits an fnmatch pattern into tokens. Invalid UTF-8 bytes are
// literals of utf8.RuneError, as the pattern could not have been read by
// Python anyway (the caller rejects such input first).
func fnTokens(pat string) []fnToken {
	var out []fnToken
	for i := 0; i < len(pat); {
		c, n := utf8.DecodeRuneInString(pat[i:])
		i += n
		switch c {
		case '*':
			if len(out) == 0 || out[len(out)-1].kind != fnStar {
				out = append(out, fnToken{kind: fnStar})
			}
		case '?':
			out = append(out, fnToken{kind: fnAny})
		case '[':
			// As fnmatch: a '!' first negates, a ']' first (after any '!')
			// is a member, and without a closing ']' the '[' is literal.
			j := i
			if j < len(pat) && pat[j] == '!' {
				j++
			}
			if j < len(pat) && pat[j] == ']' {
				j++
			}
			for j < len(pat) && pat[j] != ']' {
				j++
			}
			if j >= len(pat) {
				out = append(out, fnToken{kind: fnLiteral, r: '['})
				continue
			}
			out = append(out, parseFnClass(pat[i:j]))
			i = j + 1
		default:
			out = append(out, fnToken{kind: fnLiteral, r: c})
		}
	}
	return out
}

// parseFnClass parses the text between '[' and ']'. "a-c" is a range; a range
// whose ends are out of order matches nothing, as CPython drops it; a '-'
// first or last is a member.
func parseFnClass(body string) fnToken {
	t := fnToken{kind: fnClass}
	if strings.HasPrefix(body, "!") {
		t.negate = true
		body = body[1:]
	}
	rs := []rune(body)
	for k := 0; k < len(rs); k++ {
		if k+2 < len(rs) && rs[k+1] == '-' {
			if rs[k] <= rs[k+2] {
				t.ranges = append(t.ranges, fnRange{rs[k], rs[k+2]})
			}
			k += 2
			continue
		}
		t.ranges = append(t.ranges, fnRange{rs[k], rs[k]})
	}
	return t
}

// fnmatchRegexp returns an RE2 regular expression that matches exactly the
// strings the fnmatch pattern matches (whole string, case-sensitive, as
// fnmatch.fnmatch on POSIX).
func fnmatchRegexp(pat string) string {
	return "^(?s:" + fnmatchBody(pat) + `)\z`
}

// fnmatchBody is the regular expression of fnmatchRegexp without anchors.
func fnmatchBody(pat string) string {
	var b strings.Builder
	for _, t := range fnTokens(pat) {
		switch t.kind {
		case fnStar:
			b.WriteString(".*")
		case fnAny:
			b.WriteString(".")
		case fnClass:
			writeClass(&b, t)
		default:
			writeLiteral(&b, t.r)
		}
	}
	return b.String()
}

func writeClass(b *strings.Builder, t fnToken) {
	switch {
	case len(t.ranges) == 0 && t.negate:
		b.WriteString(".")
		return
	case len(t.ranges) == 0:
		// RE2 has no (?!); a class of no character matches nothing.
		b.WriteString(`[^\x00-\x{10FFFF}]`)
		return
	}
	b.WriteByte('[')
	if t.negate {
		b.WriteByte('^')
	}
	for _, r := range t.ranges {
		writeClassRune(b, r.lo)
		if r.hi != r.lo {
			b.WriteByte('-')
			writeClassRune(b, r.hi)
		}
	}
	b.WriteByte(']')
}

func writeClassRune(b *strings.Builder, r rune) {
	switch r {
	case '\\', ']', '[', '^', '-':
		b.WriteByte('\\')
	}
	b.WriteRune(r)
}

func writeLiteral(b *strings.Builder, r rune) {
	if r < utf8.RuneSelf && strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
		b.WriteByte('\\')
	}
	b.WriteRune(r)
}

// fnmatchGlob turns an fnmatch pattern into one of image-swapper's globs,
// which know '*' and '?' but no character classes: each class becomes '?',
// which matches a superset. classes reports whether there was one.
func fnmatchGlob(pat string) (glob string, classes bool) {
	var b strings.Builder
	for _, t := range fnTokens(pat) {
		switch t.kind {
		case fnStar:
			b.WriteByte('*')
		case fnAny:
			b.WriteByte('?')
		case fnClass:
			b.WriteByte('?')
			classes = true
		default:
			b.WriteRune(t.r)
		}
	}
	return b.String(), classes
}

// hasFnWildcard reports whether pat has a token other than literals.
func hasFnWildcard(pat string) bool {
	for _, t := range fnTokens(pat) {
		if t.kind != fnLiteral {
			return true
		}
	}
	return false
}

// celString quotes s as a CEL string literal.
func celString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				b.WriteString(`\x`)
				b.WriteByte("0123456789abcdef"[r>>4])
				b.WriteByte("0123456789abcdef"[r&0xf])
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
