package workload

import (
	"bytes"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// fastParse builds the YAML tree of a document written in the plain block
// style that Helm and kubectl render, several times faster than the YAML
// parser, so that a stream of thousands of Deployments parses quickly.
//
// It reads only a subset it can read exactly as the YAML parser does and
// returns ok=false for anything else, and the caller then uses the YAML
// parser: the root is a block mapping at column 0; keys are plain or quoted
// scalars followed by ": "; values are plain scalars, quoted scalars
// without escapes, literal block scalars (|, |-, |+), flow collections and
// quoted scalars that end on their line, or nested block collections;
// comments and blank lines may be anywhere. Anchors, aliases, tags, merge
// keys, complex keys, folded scalars, multi-line plain or quoted scalars,
// tabs, directives and exotic characters make it give up. Tests check that
// whenever it succeeds the YAML parser builds the same tree.
//
// Only the null and merge tags are meaningful in its trees; other scalars
// are tagged !!str whatever they would resolve to.
func fastParse(raw []byte) (*yaml.Node, bool) {
	p := fastParser{raw: raw, str: string(raw)}
	if !p.splitLines() {
		return nil, false
	}
	// About two nodes a line (a key and its value); more come in chunks.
	p.slab = make([]yaml.Node, 0, 2*len(p.lines)+4)
	li, ok := p.prologue()
	if !ok || p.lines[li].indent != 0 || !p.isKey(li, 0) {
		return nil, false
	}
	top := p.mapping(li, 0)
	if p.failed {
		return nil, false
	}
	// Epilogue: comments, blank lines and at most one "..." line.
	ended := false
	for li = p.cur; li < len(p.lines); li++ {
		l := p.lines[li]
		text := p.text(li)
		switch {
		case l.blank || l.comment:
		case !ended && l.indent == 0 && isMarker(text, '.') && blankOrComment(text[3:]):
			ended = true
		default:
			return nil, false
		}
	}
	doc := p.node(yaml.DocumentNode, "", 0, 0)
	doc.Line, doc.Column = 1, 1
	doc.Content = []*yaml.Node{top}
	return doc, true
}

// prologue skips comments, blank lines and at most one "---" line, and
// returns the first content line.
func (p *fastParser) prologue() (int, bool) {
	opened := false
	for li, l := range p.lines {
		text := p.text(li)
		switch {
		case l.blank || l.comment:
		case l.indent == 0 && (isMarker(text, '-') || isMarker(text, '.')):
			if opened || text[0] == '.' || !blankOrComment(text[3:]) {
				return 0, false // "--- value", "...", a second "---"
			}
			opened = true
		default:
			return li, true
		}
	}
	return 0, false // no content: the YAML parser's notion of empty documents is subtle
}

// maxKey bounds an implicit key's text up to its ':'; the YAML parser
// refuses keys longer than 1024 characters.
const maxKey = 1000

type fastLine struct {
	start, end int  // the line's bytes, without its line break
	indent     int  // leading spaces
	terminated bool // a line break follows
	blank      bool // spaces only
	comment    bool // a comment after the indentation
	ascii      bool // columns are byte offsets
}

type fastParser struct {
	raw    []byte
	str    string // raw as a string: scalar values are substrings of it
	lines  []fastLine
	slab   []yaml.Node
	cur    int // the next line not yet consumed
	failed bool
}

// splitLines records the lines, refusing what a line-based reading cannot
// take: tabs, carriage returns other than before a line feed, NEL, LS, PS,
// a byte order mark, control and non-printable characters, invalid UTF-8.
func (p *fastParser) splitLines() bool {
	raw := p.raw
	p.lines = make([]fastLine, 0, bytes.Count(raw, []byte{'\n'})+1)
	for off := 0; off < len(raw); {
		l := fastLine{start: off, ascii: true}
		i := off
		for ; i < len(raw) && raw[i] != '\n'; i++ {
			c := raw[i]
			switch {
			case c >= 0x20 && c < 0x7f:
			case c == '\r' && i+1 < len(raw) && raw[i+1] == '\n':
			case c >= utf8.RuneSelf:
				r, w := utf8.DecodeRune(raw[i:])
				if r == utf8.RuneError || r == 0xFEFF || !printable(r) {
					return false
				}
				l.ascii = false
				i += w - 1
			default:
				return false
			}
		}
		l.end = i
		if i > off && raw[i-1] == '\r' {
			l.end--
		}
		l.terminated = i < len(raw)
		for l.indent < l.end-l.start && raw[l.start+l.indent] == ' ' {
			l.indent++
		}
		l.blank = l.indent == l.end-l.start
		l.comment = !l.blank && raw[l.start+l.indent] == '#'
		p.lines = append(p.lines, l)
		off = i + 1
	}
	return true
}

func (p *fastParser) text(li int) []byte {
	return p.raw[p.lines[li].start:p.lines[li].end]
}

func (p *fastParser) fail() *yaml.Node {
	p.failed = true
	return p.node(yaml.ScalarNode, "!!null", 0, 0)
}

// node allocates from a slab: the trees of a stream are built from few
// allocations.
func (p *fastParser) node(kind yaml.Kind, tag string, li, pos int) *yaml.Node {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]yaml.Node, 0, 32)
	}
	p.slab = append(p.slab, yaml.Node{Kind: kind, Tag: tag, Line: li + 1, Column: p.column(li, pos)})
	return &p.slab[len(p.slab)-1]
}

// column converts a byte offset in a line to the parser's 1-based column,
// counted in characters.
func (p *fastParser) column(li, pos int) int {
	if li >= len(p.lines) || p.lines[li].ascii {
		return pos + 1
	}
	return utf8.RuneCount(p.text(li)[:pos]) + 1
}

// nextContent returns the next line from p.cur that is neither blank nor a
// comment, or -1. Document markers end the content.
func (p *fastParser) nextContent() int {
	for li := p.cur; li < len(p.lines); li++ {
		l := p.lines[li]
		if l.blank || l.comment {
			continue
		}
		if l.indent == 0 && (isMarker(p.text(li), '-') || isMarker(p.text(li), '.')) {
			return -1
		}
		return li
	}
	return -1
}

// isDash: a block sequence entry starts at pos.
func (p *fastParser) isDash(li, pos int) bool {
	t := p.text(li)
	return pos < len(t) && t[pos] == '-' && (pos+1 == len(t) || t[pos+1] == ' ')
}

// isKey: an implicit key ("name:", "'a b': ") starts at pos.
func (p *fastParser) isKey(li, pos int) bool {
	t := p.text(li)
	kind, end, ok := scanToken(t, pos)
	if !ok || kind == tokFlow || kind == tokHeader {
		return false
	}
	q := skipSpaces(t, end)
	return q < len(t) && t[q] == ':' && (q+1 == len(t) || t[q+1] == ' ')
}

// mapping reads a block mapping whose first key is at (li, pos); its other
// keys are on the following lines at the same indentation.
func (p *fastParser) mapping(li, pos int) *yaml.Node {
	m := p.node(yaml.MappingNode, "!!map", li, pos)
	col := pos
	for {
		t := p.text(li)
		kind, end, ok := scanToken(t, pos)
		if !ok || kind == tokFlow || kind == tokHeader {
			return p.fail()
		}
		q := skipSpaces(t, end)
		if q == len(t) || t[q] != ':' || (q+1 < len(t) && t[q+1] != ' ') || q-pos > maxKey {
			return p.fail()
		}
		key := p.scalar(li, pos, end, kind)
		if key.Value == "<<" && kind == tokPlain {
			return p.fail() // merge keys are the YAML parser's
		}
		value := p.valueAfter(li, q+1, col)
		if p.failed {
			return value
		}
		m.Content = append(m.Content, key, value)
		next := p.nextContent()
		if next < 0 || p.lines[next].indent < col {
			return m
		}
		if p.lines[next].indent > col || p.isDash(next, col) {
			return p.fail()
		}
		li, pos = next, col
	}
}

// sequence reads a block sequence whose first "-" is at (li, col).
func (p *fastParser) sequence(li, col int) *yaml.Node {
	s := p.node(yaml.SequenceNode, "!!seq", li, col)
	for {
		t := p.text(li)
		q := skipSpaces(t, col+1)
		var item *yaml.Node
		switch {
		case q == len(t) || (t[q] == '#' && q > col+1):
			p.cur = li + 1
			item = p.nested(li, q, col)
		case p.isDash(li, q):
			item = p.sequence(li, q)
		case p.isKey(li, q):
			item = p.mapping(li, q)
		default:
			item = p.inline(li, q, col)
		}
		if p.failed {
			return item
		}
		s.Content = append(s.Content, item)
		next := p.nextContent()
		if next < 0 || p.lines[next].indent < col {
			return s
		}
		if p.lines[next].indent > col {
			return p.fail()
		}
		if !p.isDash(next, col) {
			return s // the parent mapping's next key, after an indentless sequence
		}
		li = next
	}
}

// valueAfter reads the value of a key whose ':' ends at pos, in a mapping
// at column col.
func (p *fastParser) valueAfter(li, pos, col int) *yaml.Node {
	t := p.text(li)
	q := skipSpaces(t, pos)
	if q == len(t) || (t[q] == '#' && q > pos) {
		p.cur = li + 1
		if next := p.nextContent(); next >= 0 && p.lines[next].indent == col && p.isDash(next, col) {
			return p.sequence(next, col) // an indentless sequence
		}
		return p.nested(li, q, col)
	}
	return p.inline(li, q, col)
}

// nested reads a value that starts on a following line, more indented than
// parent, or a null when there is none.
func (p *fastParser) nested(li, pos, parent int) *yaml.Node {
	next := p.nextContent()
	if next < 0 || p.lines[next].indent <= parent {
		n := p.node(yaml.ScalarNode, "!!null", li, pos)
		return n
	}
	ind := p.lines[next].indent
	switch {
	case p.isDash(next, ind):
		return p.sequence(next, ind)
	case p.isKey(next, ind):
		return p.mapping(next, ind)
	}
	return p.inline(next, ind, parent)
}

// inline reads a scalar, a flow collection or a literal block scalar at
// (li, pos), a value in a collection whose indentation is parent.
func (p *fastParser) inline(li, pos, parent int) *yaml.Node {
	t := p.text(li)
	p.cur = li + 1
	if t[pos] == '|' {
		return p.literal(li, pos, parent)
	}
	var n *yaml.Node
	var end int
	if t[pos] == '[' || t[pos] == '{' {
		n, end = p.flow(li, pos)
	} else {
		kind, e, ok := scanToken(t, pos)
		if !ok || kind == tokHeader {
			return p.fail()
		}
		n, end = p.scalar(li, pos, e, kind), e
	}
	if p.failed {
		return n
	}
	if r := skipSpaces(t, end); r < len(t) && !(t[r] == '#' && r > end) {
		return p.fail() // "a: b: c", `"x" y`
	}
	// A more indented line would continue a plain scalar, or be an error.
	if next := p.nextContent(); next >= 0 && p.lines[next].indent > parent {
		return p.fail()
	}
	return n
}

// scalar makes the node of a plain or quoted scalar at t[pos:end].
func (p *fastParser) scalar(li, pos, end int, kind tokKind) *yaml.Node {
	n := p.node(yaml.ScalarNode, "!!str", li, pos)
	base := p.lines[li].start
	switch kind {
	case tokPlain:
		n.Value = p.str[base+pos : base+end]
		switch n.Value {
		case "~", "null", "Null", "NULL":
			n.Tag = "!!null"
		}
	case tokSingle:
		n.Style = yaml.SingleQuotedStyle
		inner := p.raw[base+pos+1 : base+end-1]
		if bytes.Contains(inner, []byte("''")) {
			n.Value = string(bytes.ReplaceAll(inner, []byte("''"), []byte("'")))
		} else {
			n.Value = p.str[base+pos+1 : base+end-1]
		}
	case tokDouble:
		n.Style = yaml.DoubleQuotedStyle
		if bytes.IndexByte(p.raw[base+pos:base+end], '\\') >= 0 {
			return p.fail()
		}
		n.Value = p.str[base+pos+1 : base+end-1]
	default:
		return p.fail()
	}
	return n
}

// literal reads a literal block scalar whose "|" is at (li, pos), in a
// collection whose indentation is parent.
func (p *fastParser) literal(li, pos, parent int) *yaml.Node {
	t := p.text(li)
	n := p.node(yaml.ScalarNode, "!!str", li, pos)
	n.Style = yaml.LiteralStyle
	chomp := byte(0)
	i := pos + 1
	if i < len(t) && (t[i] == '-' || t[i] == '+') {
		chomp = t[i]
		i++
	}
	if r := skipSpaces(t, i); r < len(t) && !(t[r] == '#' && r > i) {
		return p.fail() // an indentation indicator, or text after the header
	}
	// The content indentation is the first non-blank line's; blank lines
	// before it must not be longer (the parser would take theirs).
	k, longest := li+1, 0
	for ; k < len(p.lines) && p.lines[k].blank; k++ {
		longest = max(longest, p.lines[k].indent)
	}
	if k == len(p.lines) || p.lines[k].indent <= parent || longest > p.lines[k].indent {
		return p.fail() // empty block scalars are the YAML parser's
	}
	indent := p.lines[k].indent
	var b []byte
	for j := li + 1; j < k; j++ {
		b = append(b, '\n')
	}
	last, blanks := -1, 0 // last content line, blank lines after it
	for ; k < len(p.lines); k++ {
		l := p.lines[k]
		if l.blank {
			if l.indent > indent {
				return p.fail() // spaces that would be content
			}
			blanks++
			continue
		}
		if l.indent < indent {
			break
		}
		if last >= 0 {
			b = append(b, '\n')
			for ; blanks > 0; blanks-- {
				b = append(b, '\n')
			}
		}
		b = append(b, p.raw[l.start+indent:l.end]...)
		last = k
	}
	// The breaks after the last content line: its own and the blank lines'.
	breaks := 0
	for j := last; j < k; j++ {
		if p.lines[j].terminated {
			breaks++
		}
	}
	switch chomp {
	case 0:
		if breaks > 0 {
			b = append(b, '\n')
		}
	case '+':
		for ; breaks > 0; breaks-- {
			b = append(b, '\n')
		}
	}
	n.Value = string(b)
	p.cur = k
	if next := p.nextContent(); next >= 0 && p.lines[next].indent > parent {
		return p.fail()
	}
	return n
}

// flow reads a flow collection that ends on its line, at (li, pos); it
// returns the node and the offset after the closing bracket.
func (p *fastParser) flow(li, pos int) (*yaml.Node, int) {
	t := p.text(li)
	open := t[pos]
	kind, closer := yaml.SequenceNode, byte(']')
	if open == '{' {
		kind, closer = yaml.MappingNode, '}'
	}
	tag := "!!seq"
	if kind == yaml.MappingNode {
		tag = "!!map"
	}
	n := p.node(kind, tag, li, pos)
	n.Style = yaml.FlowStyle
	i := skipSpaces(t, pos+1)
	if i < len(t) && t[i] == closer {
		return n, i + 1
	}
	for {
		if kind == yaml.MappingNode {
			key, j := p.flowKey(li, i)
			if p.failed {
				return key, 0
			}
			i = skipSpaces(t, j)
			value, j := p.flowItem(li, i)
			if p.failed {
				return value, 0
			}
			n.Content = append(n.Content, key, value)
			i = skipSpaces(t, j)
		} else {
			item, j := p.flowItem(li, i)
			if p.failed {
				return item, 0
			}
			n.Content = append(n.Content, item)
			i = skipSpaces(t, j)
		}
		switch {
		case i < len(t) && t[i] == closer:
			return n, i + 1
		case i < len(t) && t[i] == ',':
			i = skipSpaces(t, i+1)
			if i == len(t) || t[i] == closer {
				return p.fail(), 0 // a trailing comma
			}
		default:
			return p.fail(), 0
		}
	}
}

// flowKey reads "key:" in a flow mapping and returns the key and the offset
// after the ':'.
func (p *fastParser) flowKey(li, i int) (*yaml.Node, int) {
	t := p.text(li)
	if i == len(t) {
		return p.fail(), 0
	}
	if t[i] == '"' || t[i] == '\'' {
		end, ok := scanQuoted(t, i)
		if !ok {
			return p.fail(), 0
		}
		kind := tokDouble
		if t[i] == '\'' {
			kind = tokSingle
		}
		key := p.scalar(li, i, end, kind)
		j := skipSpaces(t, end)
		if j == len(t) || t[j] != ':' || j-i > maxKey {
			return p.fail(), 0
		}
		return key, j + 1
	}
	if isFlowIndicator(t[i]) || bytes.IndexByte([]byte("#&*!|>?%@`'\":-"), t[i]) >= 0 {
		return p.fail(), 0
	}
	end := i
	for j := i; ; j++ {
		if j == len(t) || isFlowIndicator(t[j]) || t[j] == '#' {
			return p.fail(), 0 // a key without ": "
		}
		if t[j] == ':' {
			if j+1 < len(t) && t[j+1] == ' ' && j-i <= maxKey {
				key := p.scalar(li, i, end, tokPlain)
				if key.Value == "<<" {
					return p.fail(), 0
				}
				return key, j + 1
			}
			return p.fail(), 0 // "a:b" keys and ":" before an indicator
		}
		if t[j] != ' ' {
			end = j + 1
		}
	}
}

// flowItem reads a value in a flow collection: a quoted or plain scalar, or
// a nested flow collection. Pairs in sequences ("[a: b]") are refused.
func (p *fastParser) flowItem(li, i int) (*yaml.Node, int) {
	t := p.text(li)
	if i == len(t) {
		return p.fail(), 0
	}
	var n *yaml.Node
	var end int
	switch c := t[i]; {
	case c == '[' || c == '{':
		n, end = p.flow(li, i)
	case c == '"' || c == '\'':
		e, ok := scanQuoted(t, i)
		if !ok {
			return p.fail(), 0
		}
		kind := tokDouble
		if c == '\'' {
			kind = tokSingle
		}
		n, end = p.scalar(li, i, e, kind), e
	case isFlowIndicator(c) || bytes.IndexByte([]byte("#&*!|>?%@`"), c) >= 0:
		return p.fail(), 0
	case c == ':' || c == '-' && (i+1 == len(t) || t[i+1] == ' ' || isFlowIndicator(t[i+1])):
		return p.fail(), 0 // in a flow collection ':' is always an indicator here
	default:
		end = i
		j := i
		for ; j < len(t) && t[j] != ',' && t[j] != ']' && t[j] != '}'; j++ {
			switch {
			case t[j] == '[' || t[j] == '{' || t[j] == '?':
				return p.fail(), 0
			case t[j] == ':' && (j+1 == len(t) || t[j+1] == ' ' || isFlowIndicator(t[j+1])):
				return p.fail(), 0 // a pair, or an edge case of ':'
			case t[j] == '#' && t[j-1] == ' ':
				return p.fail(), 0 // a comment inside a flow collection
			case t[j] != ' ':
				end = j + 1
			}
		}
		if j == len(t) {
			return p.fail(), 0
		}
		n = p.scalar(li, i, end, tokPlain)
	}
	if p.failed {
		return n, 0
	}
	if j := skipSpaces(t, end); j < len(t) && t[j] == ':' {
		return p.fail(), 0 // a quoted or flow key of a pair
	}
	return n, end
}
