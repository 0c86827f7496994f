package workload

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// appendDoubleQuoted writes s as a double-quoted scalar. Only escapes that
// JSON shares with YAML are used, so a JSON document stays JSON.
func appendDoubleQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if printable(r) && r != utf8.RuneError {
			dst = append(dst, s[i:i+w]...)
		} else {
			// Non-printables, including the line and paragraph separators
			// that YAML parsers fold as line breaks, are escaped. Runes
			// outside the BMP are always printable here.
			dst = append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		}
		i += w
	}
	return append(dst, '"')
}

// printable reports whether YAML allows r unescaped in a scalar and no
// parser reads it as a break or a byte order mark.
func printable(r rune) bool {
	switch r {
	case 0x85, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF:
		return false
	}
	if r < 0x20 || r >= 0x7f && r <= 0x9f {
		return false
	}
	return r <= 0xD7FF || r >= 0xE000
}

// singleQuotable: single quotes cannot escape anything but the quote.
func singleQuotable(s string) bool {
	for _, r := range s {
		if r == '\t' || !printable(r) {
			return false
		}
	}
	return true
}

func appendSingleQuoted(dst []byte, s string) []byte {
	dst = append(dst, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			dst = append(dst, '\'')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '\'')
}

// plainSafe reports whether s can be written as a plain scalar that every
// YAML parser (YAML 1.1 ones included, as Kubernetes tools use) reads back
// as the same string. It errs on the side of quoting.
func plainSafe(s string, flow bool) bool {
	if s == "" || strings.IndexByte("-?:,[]{}#&*!|>'\"%@` \t", s[0]) >= 0 {
		return false
	}
	last := s[len(s)-1]
	if last == ' ' || last == '\t' || last == ':' {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, w := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !printable(r) || unicode.IsSpace(r) {
				return false
			}
			i += w
			continue
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return false
		case c == ':' && (s[i+1] == ' ' || s[i+1] == '\t'):
			return false
		case (c == ' ' || c == '\t') && s[i+1] == '#':
			return false
		case flow && strings.IndexByte(",?[]{}", c) >= 0:
			// These end a plain scalar inside a flow collection.
			return false
		}
		i++
	}
	return readsAsString(s)
}

// readsAsString reports whether a plain s resolves to a string rather than
// a null, boolean, number, timestamp or merge key, under YAML 1.1 or 1.2.
func readsAsString(s string) bool {
	switch strings.ToLower(s) {
	case "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "<<", "=",
		".inf", "-.inf", "+.inf", ".nan":
		return false
	}
	if strings.IndexByte("0123456789+-.", s[0]) < 0 {
		return true
	}
	// Numbers in any base, sexagesimals and timestamps use only these.
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("0123456789+-._:eExXoObBaAcCdDfFtTzZ ", s[i]) < 0 {
			return true
		}
	}
	return false
}
