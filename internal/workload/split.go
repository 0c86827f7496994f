package workload

import "bytes"

// Document is one YAML document of a stream, with its exact bytes.
type Document struct {
	// Index is the document's 0-based position in the stream.
	Index int
	// Line is the 1-based line of the stream on which Raw begins; 0 when the
	// document was not produced by Split. Errors add it to their line numbers
	// so that they point into the stream the user gave.
	Line int
	// Raw holds the exact bytes, separator line included. Concatenating the
	// Raw of all documents of Split(stream) gives the stream back.
	Raw []byte
}

// Split cuts a YAML stream into documents without copying it.
//
// A document starts at a "---" line (the marker alone or followed by a
// space or tab and then anything: a comment, "|", a flow collection), which
// is kept at the beginning of that document's Raw. Comments, blank lines
// and directives ("%YAML") before the first marker belong to the document
// that the marker opens, so a stream's leading comment does not become a
// document of its own. A "..." line ends a document: it stays with that
// document, as do the comments and blank lines after it, and the next
// content, directive or "---" line starts the next one. CRLF line ends are
// recognised. A stream without separators is one document; an empty stream
// has none.
func Split(stream []byte) []Document {
	var docs []Document
	start, startLine := 0, 1
	// fresh: the current document has seen neither a "---" nor content, so a
	// "---" here opens it rather than starting a new one.
	fresh := true
	// ended: the current document was closed by "...".
	ended := false
	cut := func(at, line int) {
		docs = append(docs, Document{Index: len(docs), Line: startLine, Raw: stream[start:at:at]})
		start, startLine = at, line
	}
	line := 1
	for off := 0; off < len(stream); line++ {
		next := len(stream)
		if nl := bytes.IndexByte(stream[off:], '\n'); nl >= 0 {
			next = off + nl + 1
		}
		content := stream[off:next]
		content = bytes.TrimSuffix(content, []byte{'\n'})
		content = bytes.TrimSuffix(content, []byte{'\r'})
		if off == 0 {
			content = bytes.TrimPrefix(content, utf8BOM)
		}
		switch {
		case isMarker(content, '-'):
			if !fresh {
				cut(off, line)
			}
			fresh, ended = false, false
		case isMarker(content, '.'):
			fresh, ended = false, true
		case isBlankOrComment(content):
		default:
			if ended {
				cut(off, line)
				fresh, ended = true, false
			}
			if content[0] != '%' {
				fresh = false
			}
		}
		off = next
	}
	if start < len(stream) {
		cut(len(stream), line)
	}
	return docs
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// isMarker reports whether line is a document marker made of c ("---" or
// "..."), alone or followed by a blank, as YAML defines them.
func isMarker(line []byte, c byte) bool {
	if len(line) < 3 || line[0] != c || line[1] != c || line[2] != c {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t'
}

func isBlankOrComment(line []byte) bool {
	for _, c := range line {
		switch c {
		case ' ', '\t', '\r':
		case '#':
			return true
		default:
			return false
		}
	}
	return true
}
