package workload

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Rewrite returns the document's bytes with the images at the given indexes
// (into Images()) replaced by new values. Only the bytes of the changed
// scalars differ; everything else, comments and quoting of other values
// included, is kept byte for byte. A document without a change (no index, or
// only values equal to the current ones) is returned as doc.Raw itself.
//
// A replacement keeps the scalar's style: plain stays plain when the new
// value is a safe plain scalar that still reads as a string (otherwise it
// becomes double-quoted), single- and double-quoted keep their quotes. Block
// scalars (| and >) become double-quoted scalars on the header's line; the
// header's comment is kept. An image written as an alias (*img) is changed
// at its anchor (&img); every image sharing that anchor must get the same new
// value, and an anchor also used by a non-image field is refused, as
// rewriting it would change that field too.
func (p *Parsed) Rewrite(newValues map[int]string) ([]byte, error) {
	if len(newValues) == 0 {
		return p.doc.Raw, nil
	}
	idx := make([]int, 0, len(newValues))
	for i := range newValues {
		idx = append(idx, i)
	}
	slices.Sort(idx)

	type change struct {
		ref   imageRef
		first int // index of the first image asking for it
		value string
	}
	var changes []change
	byScalar := make(map[[2]int]int, len(idx)) // scalar position -> index in changes
	for _, i := range idx {
		if i < 0 || i >= len(p.images) {
			return nil, fmt.Errorf("document %d: image index %d out of range: the document has %d images", p.doc.Index, i, len(p.images))
		}
		v := newValues[i]
		if v == p.images[i].Value {
			continue
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("document %d: %s: new value %q is not valid UTF-8", p.doc.Index, p.images[i].Path, v)
		}
		ref := p.refs[i]
		k, ok := byScalar[ref.pos()]
		if !ok {
			byScalar[ref.pos()] = len(changes)
			changes = append(changes, change{ref: ref, first: i, value: v})
		} else if changes[k].value != v {
			return nil, p.sharedError(changes[k].first, i, changes[k].value, v)
		}
	}
	if len(changes) == 0 {
		return p.doc.Raw, nil
	}
	// Images sharing a changed scalar (through an alias or a merge key)
	// change with it, so they must all ask for the same value.
	for j, ref := range p.refs {
		k, ok := byScalar[ref.pos()]
		if !ok {
			continue
		}
		v, ok := newValues[j]
		if !ok {
			v = p.images[j].Value
		}
		if v != changes[k].value {
			return nil, p.sharedError(changes[k].first, j, changes[k].value, v)
		}
	}

	// Lines are found reading forward, so in the order of the document.
	slices.SortFunc(changes, func(a, b change) int {
		if a.ref.line != b.ref.line {
			return a.ref.line - b.ref.line
		}
		return a.ref.column - b.ref.column
	})
	lines := newLineCursor(p.doc.Raw)
	edits := make([]edit, 0, len(changes))
	for _, c := range changes {
		if err := p.checkAnchor(c.ref, c.first); err != nil {
			return nil, err
		}
		e, err := p.edit(lines, c.ref, p.images[c.first].Value, c.value)
		if err != nil {
			return nil, fmt.Errorf("document %d: %s: %w", p.doc.Index, p.images[c.first].Path, err)
		}
		edits = append(edits, e)
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	size := len(p.doc.Raw)
	for k, e := range edits {
		if k > 0 && e.start < edits[k-1].end {
			return nil, fmt.Errorf("document %d: image fields overlap at byte %d", p.doc.Index, e.start)
		}
		size += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, e := range edits {
		out = append(out, p.doc.Raw[prev:e.start]...)
		out = append(out, e.text...)
		prev = e.end
	}
	return append(out, p.doc.Raw[prev:]...), nil
}

func (p *Parsed) sharedError(i, j int, vi, vj string) error {
	return fmt.Errorf("document %d: %s and %s are one YAML node (anchor/alias or merge key) but were given different values %q and %q; give them the same value or expand the alias",
		p.doc.Index, p.images[i].Path, p.images[j].Path, vi, vj)
}

// checkAnchor refuses to change an anchored scalar that a non-image field
// also refers to.
func (p *Parsed) checkAnchor(ref imageRef, first int) error {
	if ref.anchor == "" {
		return nil
	}
	images := 0
	for _, r := range p.refs {
		if r.sameScalar(ref) {
			images++
		}
	}
	if ref.uses > images {
		return fmt.Errorf("document %d: %s: the image is anchored as &%s and the anchor is also used outside image fields; rewriting it would change them too: expand the alias",
			p.doc.Index, p.images[first].Path, ref.anchor)
	}
	return nil
}

// edit replaces raw[start:end] with text.
type edit struct {
	start, end int
	text       []byte
}

var errLocate = errors.New("cannot find the scalar's text in the document")

// edit computes the replacement of the scalar ref, whose value is old,
// with value, in the scalar's style.
func (p *Parsed) edit(lines *lineCursor, ref imageRef, old, value string) (edit, error) {
	raw := p.doc.Raw
	start, ok := lines.offset(ref.line, ref.column)
	if !ok {
		return edit{}, fmt.Errorf("%w (line %d, column %d)", errLocate, ref.line, ref.column)
	}
	props := start
	start = skipProperties(raw, start)
	style := ref.style &^ (yaml.TaggedStyle | yaml.FlowStyle)
	var e edit
	var err error
	switch style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		e, err = quotedEdit(raw, start, style, old, value)
	case yaml.LiteralStyle, yaml.FoldedStyle:
		e, err = blockEdit(raw, start, old, value)
	case 0:
		e, err = plainEdit(raw, start, ref, old, value)
	default:
		err = fmt.Errorf("unsupported scalar style %d", style)
	}
	if err != nil {
		return edit{}, fmt.Errorf("line %d: %w", ref.line, err)
	}
	if start > props && isAnchorChar(raw[start-1]) {
		// The scalar followed its anchor without a space ("&a:b"); a new
		// value must not run into the anchor's name.
		e.text = append([]byte{' '}, e.text...)
	}
	return e, nil
}

// skipProperties skips an anchor (&a) and a tag (!!str) before a scalar,
// with the blanks, comments and line breaks after them.
func skipProperties(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == '&' || raw[i] == '!') {
		if raw[i] == '&' {
			// An anchor's name is made of these; the scalar may follow
			// without a space ("&a:b" anchors ":b").
			for i++; i < len(raw) && isAnchorChar(raw[i]); i++ {
			}
		} else {
			for i < len(raw) && raw[i] != ' ' && raw[i] != '\t' && raw[i] != ',' && breakWidth(raw, i) == 0 {
				i++
			}
		}
		for i < len(raw) {
			switch {
			case raw[i] == ' ' || raw[i] == '\t':
				i++
			case raw[i] == '#':
				for i < len(raw) && breakWidth(raw, i) == 0 {
					i++
				}
			case breakWidth(raw, i) > 0:
				i += breakWidth(raw, i)
			default:
				goto next
			}
		}
	next:
	}
	return i
}

func isAnchorChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-'
}

func quotedEdit(raw []byte, start int, style yaml.Style, old, value string) (edit, error) {
	q := byte('"')
	if style == yaml.SingleQuotedStyle {
		q = '\''
	}
	if start >= len(raw) || raw[start] != q {
		return edit{}, errLocate
	}
	end, multiline, escaped := -1, false, false
	for i := start + 1; i < len(raw) && end < 0; i++ {
		switch c := raw[i]; {
		case c == '\\' && q == '"':
			escaped = true
			i++
		case c == q && q == '\'' && i+1 < len(raw) && raw[i+1] == '\'':
			escaped = true
			i++
		case c == q:
			end = i + 1
		case c == '\n' || c == '\r':
			multiline = true
		}
	}
	if end < 0 {
		return edit{}, errLocate
	}
	text := raw[start:end]
	if multiline || escaped || utf8Breaks(text) {
		if !decodesTo(text, old) {
			return edit{}, errLocate
		}
	} else if string(text[1:len(text)-1]) != old {
		return edit{}, errLocate
	}
	var out []byte
	if q == '\'' && singleQuotable(value) {
		out = appendSingleQuoted(nil, value)
	} else {
		out = appendDoubleQuoted(nil, value)
	}
	return edit{start: start, end: end, text: out}, nil
}

func plainEdit(raw []byte, start int, ref imageRef, old, value string) (edit, error) {
	if start >= len(raw) || strings.IndexByte("\"'|>&!*", raw[start]) >= 0 {
		return edit{}, errLocate
	}
	end, eol := plainLineEnd(raw, start, ref.flow)
	if string(raw[start:end]) != old {
		// A plain scalar may continue on more indented lines.
		if !eol {
			return edit{}, errLocate
		}
		end = plainContinuation(raw, end, ref)
		if !decodesTo(raw[start:end], old) {
			return edit{}, errLocate
		}
	}
	var out []byte
	if plainSafe(value, ref.flow) {
		out = []byte(value)
	} else {
		out = appendDoubleQuoted(nil, value)
	}
	return edit{start: start, end: end, text: out}, nil
}

// plainLineEnd returns the end of a plain scalar's text on its first line
// (trailing blanks excluded) and whether the line ends there, so that the
// scalar may continue on the next line.
func plainLineEnd(raw []byte, i int, flow bool) (end int, eol bool) {
	end = i
	for ; i < len(raw); i++ {
		c := raw[i]
		if breakWidth(raw, i) > 0 {
			return end, true
		}
		switch {
		case c == ' ' || c == '\t':
			if i+1 < len(raw) && raw[i+1] == '#' {
				return end, false
			}
			continue
		case c == ':' && (i+1 == len(raw) || isBlankOrBreak(raw, i+1)):
			return end, false
		case flow && isFlowIndicator(c):
			return end, false
		}
		end = i + 1
	}
	return end, true
}

// plainContinuation extends a multi-line plain scalar whose first line ends
// at end, over the following lines that are indented more than the
// collection holding it and are not comments.
func plainContinuation(raw []byte, end int, ref imageRef) int {
	i := end
	for i < len(raw) {
		// Move to the start of the next line.
		for i < len(raw) && breakWidth(raw, i) == 0 {
			i++
		}
		if i >= len(raw) {
			break
		}
		i += breakWidth(raw, i)
		lineStart := i
		spaces := 0
		for i < len(raw) && raw[i] == ' ' {
			i++
			spaces++
		}
		for i < len(raw) && raw[i] == '\t' {
			i++
		}
		if i >= len(raw) || breakWidth(raw, i) > 0 {
			continue // blank line: part of the scalar only if more follows
		}
		if raw[i] == '#' || (!ref.flow && spaces <= ref.indent) {
			break
		}
		if spaces == 0 && (isMarker(lineBytes(raw, lineStart), '-') || isMarker(lineBytes(raw, lineStart), '.')) {
			break
		}
		e, eol := plainLineEnd(raw, i, ref.flow)
		if e > i {
			end = e
		}
		if !eol {
			break
		}
		i = e
	}
	return end
}

func lineBytes(raw []byte, i int) []byte {
	j := i
	for j < len(raw) && breakWidth(raw, j) == 0 {
		j++
	}
	return raw[i:j]
}

// blockEdit replaces a literal or folded block scalar with a double-quoted
// scalar on the header's line, keeping the header's comment.
func blockEdit(raw []byte, start int, old, value string) (edit, error) {
	if start >= len(raw) || (raw[start] != '|' && raw[start] != '>') {
		return edit{}, errLocate
	}
	i := start + 1
	for i < len(raw) && (raw[i] == '+' || raw[i] == '-' || raw[i] >= '0' && raw[i] <= '9') {
		if raw[i] >= '0' && raw[i] <= '9' {
			return edit{}, errors.New("block scalar with an indentation indicator: write the image as a plain or quoted scalar")
		}
		i++
	}
	afterIndicators := i
	for i < len(raw) && breakWidth(raw, i) == 0 {
		i++
	}
	headerEnd := i
	end := headerEnd
	// The value's final line breaks (chomping) depend on the lines after the
	// last content line, so the check reads up to the next less indented
	// line.
	checkEnd := len(raw)
	indent := -1
	for i < len(raw) {
		i += breakWidth(raw, i)
		lineStart := i
		for i < len(raw) && raw[i] == ' ' {
			i++
		}
		spaces := i - lineStart
		j := i
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t') {
			j++
		}
		lineEnd := j
		for lineEnd < len(raw) && breakWidth(raw, lineEnd) == 0 {
			lineEnd++
		}
		if j == lineEnd {
			i = lineEnd
			continue // blank line
		}
		if indent < 0 {
			indent = spaces
		}
		if spaces < indent || (spaces == 0 && (isMarker(raw[lineStart:lineEnd], '-') || isMarker(raw[lineStart:lineEnd], '.'))) {
			checkEnd = lineStart
			break
		}
		end, i = lineEnd, lineEnd
	}
	if !decodesTo(raw[start:checkEnd], old) {
		return edit{}, errLocate
	}
	text := appendDoubleQuoted(nil, value)
	text = append(text, raw[afterIndicators:headerEnd]...)
	return edit{start: start, end: end, text: text}, nil
}

// decodesTo reports whether text, parsed on its own, is the scalar value.
// It checks spans whose text is not the value verbatim (escapes, folding).
func decodesTo(text []byte, value string) bool {
	var n yaml.Node
	if err := yaml.Unmarshal(text, &n); err != nil || len(n.Content) != 1 {
		return false
	}
	s := n.Content[0]
	return s.Kind == yaml.ScalarNode && s.Value == value
}

// breakWidth returns the length of the line break at raw[i], 0 if none.
// Like the YAML parser, it counts \r\n, \r, \n, NEL, LS and PS.
func breakWidth(raw []byte, i int) int {
	switch c := raw[i]; c {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(raw) && raw[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if i+1 < len(raw) && raw[i+1] == 0x85 {
			return 2
		}
	case 0xE2:
		if i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

func utf8Breaks(b []byte) bool {
	for i := range b {
		if b[i] >= 0x80 && breakWidth(b, i) > 0 {
			return true
		}
	}
	return false
}

func isBlankOrBreak(raw []byte, i int) bool {
	return raw[i] == ' ' || raw[i] == '\t' || breakWidth(raw, i) > 0
}

// isFlowIndicator: the characters that end a plain scalar in a flow
// collection, as the YAML parsers Kubernetes tools use define them.
func isFlowIndicator(c byte) bool {
	return c == ',' || c == '?' || c == '[' || c == ']' || c == '{' || c == '}'
}

// lineCursor maps the parser's line/column positions to byte offsets,
// reading the document forward only as far as needed.
type lineCursor struct {
	raw  []byte
	line int // the line starting at off, 1-based
	off  int
}

func newLineCursor(raw []byte) *lineCursor {
	return &lineCursor{raw: raw, line: 1}
}

// offset converts a 1-based line and a 1-based column counted in characters
// to a byte offset. Lines must not decrease from one call to the next.
func (c *lineCursor) offset(line, col int) (int, bool) {
	raw := c.raw
	if line < c.line || col < 1 {
		return 0, false
	}
	for c.line < line {
		i, found := c.off, false
		for i < len(raw) && !found {
			if b := raw[i]; b == '\n' || b == '\r' || b == 0xC2 || b == 0xE2 {
				if w := breakWidth(raw, i); w > 0 {
					i += w
					found = true
					continue
				}
			}
			i++
		}
		if !found {
			return 0, false // no such line
		}
		c.line, c.off = c.line+1, i
	}
	i := c.off
	// The parser does not count a leading byte order mark in columns.
	if line == 1 && len(raw) >= 3 && raw[0] == 0xEF && raw[1] == 0xBB && raw[2] == 0xBF {
		i += 3
	}
	for k := 1; k < col; k++ {
		if i >= len(raw) || breakWidth(raw, i) > 0 {
			return 0, false
		}
		if raw[i] < utf8.RuneSelf {
			i++
		} else {
			_, w := utf8.DecodeRune(raw[i:])
			i += w
		}
	}
	return i, true
}
