package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one key of a configuration.
type FieldError struct {
	// Path is the key path of the offending value, as written in the file:
	// "rules[1].action", `mirroring.namespaceSelector.matchLabels["app.kubernetes.io/name"]`.
	// It is empty for a problem with the file as a whole.
	Path string
	// Reason says what is wrong and what would be right.
	Reason string
	// Line is the 1-based line of the value in the YAML file, or 0 when the
	// error did not come from a file (Validate on a Config built in Go).
	Line int
}

// Error reads "<path>: <reason>", preceded by "line N: " when the line is
// known: `line 7: rules[1].action: "Deny" is not one of swap, keep, deny`.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// fileError ties a FieldError to the file it was found in, so that
// errors.As still finds the *FieldError.
type fileError struct {
	name string
	err  *FieldError
}

func (e *fileError) Error() string { return e.name + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// problems collects FieldErrors in the order they are found.
type problems []*FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// field is the key path of a struct field or a map key below base.
// Keys that are not plain words are quoted in brackets so that the path
// stays unambiguous: matchLabels["app.kubernetes.io/name"].
func field(base, key string) string {
	if !isPlainKey(key) {
		return base + "[" + strconv.Quote(key) + "]"
	}
	if base == "" {
		return key
	}
	return base + "." + key
}

// index is the key path of a list element.
func index(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
