package importer

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// This file reads an ImageSwap MAPS file exactly as ImageSwap v1.5.x does,
// including its quirks, so that the translation starts from what ImageSwap
// actually sees. Source: app/imageswap/imageswap.py at commit b596f22
// (v1.5.3), build_swap_map, L203-257.

// The special keys and prefixes (imageswap.py L40-43).
const (
	mapsDefaultKey  = "default"
	mapsNoswapKey   = "noswap_wildcards"
	mapsExactPrefix = "[EXACT]"
	mapsReplPrefix  = "[REPLACE]"
)

// mapsEntryKind says which of ImageSwap's three dicts an entry lands in.
type mapsEntryKind int

const (
	kindMap     mapsEntryKind = iota // maps: registry keys, default, noswap_wildcards
	kindExact                        // exact_maps
	kindReplace                      // replace_maps
)

// mapsEntry is one key/value line.
type mapsEntry struct {
	line  int
	input string // the line as written, for findings
	kind  mapsEntryKind
	key   string // without [EXACT]/[REPLACE]
	val   string
}

// mapsDict is one of ImageSwap's dicts: a later line with the same key
// replaces the value but, as Python dicts do, keeps the key's position.
type mapsDict struct {
	order []string
	last  map[string]*mapsEntry
	// shadowed lists, per key, the earlier lines whose value was replaced.
	shadowed map[string][]*mapsEntry
}

func newMapsDict() *mapsDict {
	return &mapsDict{last: map[string]*mapsEntry{}, shadowed: map[string][]*mapsEntry{}}
}

func (d *mapsDict) set(e *mapsEntry) {
	if prev, ok := d.last[e.key]; ok {
		d.shadowed[e.key] = append(d.shadowed[e.key], prev)
	} else {
		d.order = append(d.order, e.key)
	}
	d.last[e.key] = e
}

func (d *mapsDict) get(key string) (*mapsEntry, bool) {
	e, ok := d.last[key]
	return e, ok
}

// entries returns the effective entries in the dict's (first-insertion) order.
func (d *mapsDict) entries() []*mapsEntry {
	out := make([]*mapsEntry, len(d.order))
	for i, k := range d.order {
		out[i] = d.last[k]
	}
	return out
}

// mapsFile is a parsed MAPS file: ImageSwap's three dicts.
type mapsFile struct {
	maps, exact, replace *mapsDict
}

// errNotUTF8 is returned for input Python could not decode.
var errNotUTF8 = errors.New("importer: the MAPS file is not valid UTF-8 (ImageSwap reads it as UTF-8 text and would fail too)")

// parseMaps reads a MAPS file. Lines that ImageSwap skips as invalid are
// reported as findings.
func parseMaps(data []byte, fs *findings) (*mapsFile, error) {
	if !utf8.Valid(data) {
		return nil, errNotUTF8
	}
	f := &mapsFile{maps: newMapsDict(), exact: newMapsDict(), replace: newMapsDict()}
	for n, raw := range splitPythonLines(string(data)) {
		lineNo := n + 1
		e, reason := parseMapsLine(raw)
		if reason != "" {
			fs.add(lineNo, strings.TrimSpace(raw), reason)
			continue
		}
		if e == nil {
			continue // comment or blank
		}
		e.line, e.input = lineNo, strings.TrimSpace(raw)
		switch e.kind {
		case kindExact:
			f.exact.set(e)
		case kindReplace:
			f.replace.set(e)
		default:
			f.maps.set(e)
		}
	}
	return f, nil
}

// splitPythonLines splits text into lines as Python's text mode with
// universal newlines does: "\n", "\r\n" and "\r" all end a line. The
// terminators are dropped; ImageSwap strips them anyway.
func splitPythonLines(s string) []string {
	var lines []string
	for s != "" {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return lines
}

// parseMapsLine applies build_swap_map's steps to one line (L214-253). It
// returns nil and no reason for a comment or blank line, and a reason when
// ImageSwap skips the line as invalid.
func parseMapsLine(line string) (*mapsEntry, string) {
	// L216: a '#' in the first column makes a comment.
	if strings.HasPrefix(line, "#") {
		return nil, ""
	}
	// L219-220: re.sub(r"(^.*[^#])(#.*$)", r"\1", line) removes from the
	// last '#' that follows a character other than '#' to the end of the
	// line (the match is greedy), so "a # b # c" keeps "a # b ".
	for i := len(line) - 1; i >= 1; i-- {
		if line[i] == '#' && line[i-1] != '#' {
			line = line[:i]
			break
		}
	}
	// L222: trailing white space goes, then every ' ' (but not tabs).
	line = strings.ReplaceAll(strings.TrimRightFunc(line, isPythonSpace), " ", "")
	if line == "" {
		return nil, ""
	}
	var key, val string
	switch {
	// L227-228: "::" splitting into exactly two parts.
	case strings.Contains(line, "::") && strings.Count(line, "::") == 1:
		key, val, _ = strings.Cut(line, "::")
	// L230-234: the deprecated single ':' form, exactly one ':'.
	case strings.Count(line, ":") == 1:
		key, val, _ = strings.Cut(line, ":")
	// L235-244: anything else is skipped with a warning.
	case strings.Count(line, ":") > 1 && !strings.Contains(line, "::"):
		return nil, "ImageSwap skips this line: a key or value with a port needs \"::\" between key and value; not imported"
	default:
		return nil, "ImageSwap skips this line: it is not KEY::VALUE; not imported"
	}
	e := &mapsEntry{key: key, val: val}
	// L246-253: the prefixes are case-sensitive and white space after them
	// is dropped.
	switch {
	case strings.HasPrefix(key, mapsExactPrefix):
		e.kind, e.key = kindExact, strings.TrimLeftFunc(key[len(mapsExactPrefix):], isPythonSpace)
	case strings.HasPrefix(key, mapsReplPrefix):
		e.kind, e.key = kindReplace, strings.TrimLeftFunc(key[len(mapsReplPrefix):], isPythonSpace)
	}
	return e, ""
}

// isPythonSpace reports whether Python's str.isspace holds for r; it
// differs from unicode.IsSpace in counting the separators U+001C-U+001F.
func isPythonSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return 0x2000 <= r && r <= 0x200a
}
