package workload

import "bytes"

// sniffKind reads the top-level kind of a block-style document without
// parsing it, so that large documents of kinds without images (CRDs whose
// schemas say "image" a hundred times, ConfigMaps holding Helm values) skip
// the YAML parser.
//
// It must never be wrong, so it reads only a simple, certain form and
// otherwise returns ok=false: the root is a block mapping whose keys start
// at column 0; no quoted scalar or flow collection spans lines (they are the
// only constructs that can hide a column-0 line); block scalars are skipped
// by indentation; anchors, aliases, tags, complex keys, merge keys at the
// root, directives, tabs and exotic line breaks are refused. kind is "" when
// the document has no kind or a null one.
func sniffKind(raw []byte) (kind string, ok bool) {
	var (
		started     bool // the root mapping's first key was seen
		opened      bool // a "---" line was seen
		ended       bool // a "..." line was seen
		seenKind    bool
		afterKind   bool // the previous content line was the kind line
		blockParent = -1 // >= 0: inside a block scalar whose parent is at this indentation
		blockIndent = -1 // the block scalar's content indentation, once known
		blockBlank  = 0  // the most spaces on the block scalar's leading blank lines
	)
	if bytes.HasPrefix(raw, utf8BOM) {
		return "", false
	}
	for off := 0; off < len(raw); {
		end := bytes.IndexByte(raw[off:], '\n')
		if end < 0 {
			end = len(raw)
		} else {
			end += off
		}
		line := raw[off:end]
		off = end + 1
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if !plainLine(line) {
			return "", false
		}
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		blank := indent == len(line)
		if blockParent >= 0 {
			if blank {
				if blockIndent < 0 {
					blockBlank = max(blockBlank, indent)
				}
				continue
			}
			if blockIndent < 0 && indent > blockParent {
				if blockBlank > indent {
					// The parser takes the indentation from the blank lines
					// then, and ends the scalar here.
					return "", false
				}
				blockIndent = indent
				continue
			}
			if blockIndent >= 0 && indent >= blockIndent {
				continue
			}
			blockParent, blockIndent = -1, -1
		}
		if blank {
			continue
		}
		if afterKind && indent > 0 {
			return "", false // may continue the kind's plain scalar
		}
		afterKind = false
		if line[indent] == '#' {
			continue
		}
		if ended {
			return "", false
		}
		if indent == 0 {
			switch {
			case isMarker(line, '-'):
				if started || opened || !blankOrComment(line[3:]) {
					return "", false
				}
				opened = true
				continue
			case isMarker(line, '.'):
				if !blankOrComment(line[3:]) {
					return "", false
				}
				ended = true
				continue
			}
		}
		t, ok := tokenizeLine(line, indent, indent == 0)
		if !ok {
			return "", false
		}
		switch {
		case indent == 0 && t.rootKey:
			started = true
			switch t.key {
			case "<<":
				return "", false
			case "kind":
				if seenKind || !t.hasValue {
					return "", false
				}
				seenKind, afterKind, kind = true, true, t.value
			}
		case !started || (indent == 0 && !t.dash):
			return "", false
		}
		if t.header {
			blockParent, blockIndent, blockBlank = t.parent, -1, 0
		}
	}
	return kind, true
}

// plainLine rejects the characters that would make line-by-line reading
// differ from the YAML parser's: tabs, lone carriage returns, NEL, LS, PS.
func plainLine(line []byte) bool {
	for i, c := range line {
		switch c {
		case '\t', '\r':
			return false
		case 0xC2:
			if i+1 < len(line) && line[i+1] == 0x85 {
				return false
			}
		case 0xE2:
			if i+2 < len(line) && line[i+1] == 0x80 && (line[i+2] == 0xA8 || line[i+2] == 0xA9) {
				return false
			}
		}
	}
	return true
}

func blankOrComment(b []byte) bool {
	for i, c := range b {
		if c == '#' {
			return i > 0
		}
		if c != ' ' {
			return false
		}
	}
	return true
}

// lineTokens is what tokenizeLine learnt about one line.
type lineTokens struct {
	dash     bool   // the line starts with sequence entries ("- ")
	rootKey  bool   // a mapping key at column 0
	key      string // the key, decoded, when rootKey
	hasValue bool   // a scalar value follows the root key "kind" on the line
	value    string // that value, decoded; "" for null
	header   bool   // the line ends with a block scalar header
	parent   int    // the block scalar's parent indentation
}

// tokenizeLine reads one line of block context: "- " entries, then an
// optional "key:" and an optional value, each a plain scalar, a quoted
// scalar or a flow collection that ends on the line, or a block scalar
// header. Anything else is refused. Only with root are a key and the kind's
// value decoded.
func tokenizeLine(line []byte, pos int, root bool) (t lineTokens, ok bool) {
	parent := pos
	for pos < len(line) && line[pos] == '-' && (pos+1 == len(line) || line[pos+1] == ' ') {
		t.dash, parent = true, pos
		pos++
		for pos < len(line) && line[pos] == ' ' {
			pos++
		}
	}
	if pos == len(line) || line[pos] == '#' {
		return t, true
	}
	keyCol := pos
	kind, end, ok := scanToken(line, pos)
	if !ok {
		return t, false
	}
	p := skipSpaces(line, end)
	isKey := kind != tokHeader && kind != tokFlow && p < len(line) && line[p] == ':' && (p+1 == len(line) || line[p+1] == ' ')
	if !isKey {
		if kind == tokHeader {
			if !t.dash {
				return t, false // the parent's indentation is on another line
			}
			return headerTail(line, pos, parent, t)
		}
		return t, endOfLine(line, p)
	}
	if root && !t.dash {
		t.rootKey = true
		if t.key, ok = decodeToken(line[keyCol:end], kind); !ok {
			return t, false
		}
	}
	p = skipSpaces(line, p+1)
	if p == len(line) || line[p] == '#' {
		return t, true
	}
	vkind, vend, ok := scanToken(line, p)
	if !ok {
		return t, false
	}
	if vkind == tokHeader {
		return headerTail(line, p, keyCol, t)
	}
	if !endOfLine(line, skipSpaces(line, vend)) {
		return t, false
	}
	if t.rootKey && t.key == "kind" && vkind != tokFlow {
		t.hasValue = true
		if t.value, ok = decodeToken(line[p:vend], vkind); !ok {
			return t, false
		}
		if vkind == tokPlain {
			switch t.value {
			case "~", "null", "Null", "NULL":
				t.value = ""
			}
		}
	}
	return t, true
}

// headerTail checks a block scalar header at line[pos] ("|", ">-", "|+ #c");
// explicit indentation indicators are refused.
func headerTail(line []byte, pos, parent int, t lineTokens) (lineTokens, bool) {
	pos++
	if pos < len(line) && (line[pos] == '+' || line[pos] == '-') {
		pos++
	}
	if pos < len(line) && line[pos] != ' ' && line[pos] != '#' {
		return t, false
	}
	if !endOfLine(line, skipSpaces(line, pos)) {
		return t, false
	}
	t.header, t.parent = true, parent
	return t, true
}

func skipSpaces(line []byte, p int) int {
	for p < len(line) && line[p] == ' ' {
		p++
	}
	return p
}

// endOfLine: nothing but a comment after p (which follows a space).
func endOfLine(line []byte, p int) bool {
	return p == len(line) || (line[p] == '#' && p > 0 && line[p-1] == ' ')
}

type tokKind uint8

const (
	tokPlain tokKind = iota
	tokDouble
	tokSingle
	tokFlow
	tokHeader
)

// scanToken reads the token at line[pos] in block context and returns the
// end of its text (a plain scalar's trailing spaces excluded).
func scanToken(line []byte, pos int) (tokKind, int, bool) {
	switch c := line[pos]; c {
	case '"', '\'':
		end, ok := scanQuoted(line, pos)
		if c == '"' {
			return tokDouble, end, ok
		}
		return tokSingle, end, ok
	case '[', '{':
		end, ok := scanFlow(line, pos)
		return tokFlow, end, ok
	case '|', '>':
		return tokHeader, pos + 1, true
	case '&', '*', '!', '?', '%', '@', '`', ',', ']', '}', '#':
		return 0, 0, false
	case '-', ':':
		if pos+1 == len(line) || line[pos+1] == ' ' {
			return 0, 0, false
		}
	}
	end := pos
	for i := pos; i < len(line); i++ {
		c := line[i]
		if c == ':' && (i+1 == len(line) || line[i+1] == ' ') {
			break
		}
		if c == ' ' {
			if i+1 < len(line) && line[i+1] == '#' {
				break
			}
			continue
		}
		end = i + 1
	}
	return tokPlain, end, true
}

// scanQuoted finds the end of a quoted scalar that closes on the line.
func scanQuoted(line []byte, pos int) (int, bool) {
	q := line[pos]
	for i := pos + 1; i < len(line); i++ {
		switch {
		case q == '"' && line[i] == '\\':
			if i+1 == len(line) {
				return 0, false // an escaped line break: the scalar goes on
			}
			i++
		case line[i] == q:
			if q == '\'' && i+1 < len(line) && line[i+1] == '\'' {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return 0, false
}

// scanFlow finds the end of a flow collection that closes on the line.
func scanFlow(line []byte, pos int) (int, bool) {
	depth := 0
	tokenStart := true // a quoted scalar may begin here
	for i := pos; i < len(line); {
		switch c := line[i]; {
		case c == ' ':
			i++
		case c == '[' || c == '{':
			depth++
			i++
			tokenStart = true
		case c == ']' || c == '}':
			depth--
			i++
			if depth == 0 {
				return i, true
			}
			tokenStart = false
		case c == ',' || c == ':':
			i++
			tokenStart = true
		case c == '"' || c == '\'':
			if !tokenStart {
				return 0, false
			}
			end, ok := scanQuoted(line, i)
			if !ok {
				return 0, false
			}
			i, tokenStart = end, false
		case bytes.IndexByte([]byte("#&*!|>?%@`"), c) >= 0:
			return 0, false
		default:
			// A plain scalar ends at a flow indicator or ": ".
			for i < len(line) && !isFlowIndicator(line[i]) && !(line[i] == ':' && (i+1 == len(line) || line[i+1] == ' ')) &&
				!(line[i] == ' ' && i+1 < len(line) && line[i+1] == '#') {
				i++
			}
			tokenStart = false
		}
	}
	return 0, false
}

// decodeToken returns a plain or quoted scalar's value; double-quoted
// scalars with escapes are refused.
func decodeToken(text []byte, kind tokKind) (string, bool) {
	switch kind {
	case tokPlain:
		return string(text), true
	case tokSingle:
		return string(bytes.ReplaceAll(text[1:len(text)-1], []byte("''"), []byte("'"))), true
	case tokDouble:
		if bytes.IndexByte(text, '\\') >= 0 {
			return "", false
		}
		return string(text[1 : len(text)-1]), true
	}
	return "", false
}

// peekKind returns the value of the first "kind:" line at column 0, as a
// guess that is cheap and may be wrong: it only decides whether sniffing is
// worth it.
func peekKind(raw []byte) string {
	i := 0
	if !bytes.HasPrefix(raw, []byte("kind:")) {
		i = bytes.Index(raw, []byte("\nkind:"))
		if i < 0 {
			return ""
		}
		i++
	}
	v := raw[i+len("kind:"):]
	if end := bytes.IndexByte(v, '\n'); end >= 0 {
		v = v[:end]
	}
	if c := bytes.Index(v, []byte(" #")); c >= 0 {
		v = v[:c]
	}
	v = bytes.Trim(v, " \r\"'")
	return string(v)
}
