package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// treeDiff describes the first difference between two trees in what the
// locator reads of them: kinds, styles, values, positions, nullness.
func treeDiff(a, b *yaml.Node, path string) string {
	if a.Kind != b.Kind {
		return fmt.Sprintf("%s: kind %d vs %d", path, a.Kind, b.Kind)
	}
	an, bn := a.Kind == yaml.ScalarNode && a.Tag == "!!null", b.Kind == yaml.ScalarNode && b.Tag == "!!null"
	if an != bn {
		return fmt.Sprintf("%s: null %v vs %v (%q, %q)", path, an, bn, a.Value, b.Value)
	}
	if an {
		return "" // an empty value's position is of no use
	}
	if a.Kind != yaml.DocumentNode && (a.Style != b.Style || a.Value != b.Value || a.Line != b.Line || a.Column != b.Column || a.Anchor != b.Anchor) {
		return fmt.Sprintf("%s: style %d value %q at %d:%d vs style %d value %q at %d:%d",
			path, a.Style, a.Value, a.Line, a.Column, b.Style, b.Value, b.Line, b.Column)
	}
	if len(a.Content) != len(b.Content) {
		return fmt.Sprintf("%s: %d children vs %d", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if d := treeDiff(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// assertFastAgrees: when fastParse reads raw, the YAML parser reads it too
// and builds the same tree. It reports whether fastParse read it.
func assertFastAgrees(t testing.TB, raw []byte) bool {
	t.Helper()
	fast, ok := fastParse(raw)
	if !ok {
		return false
	}
	var slow yaml.Node
	if err := yaml.Unmarshal(raw, &slow); err != nil {
		t.Fatalf("fastParse read a document the YAML parser refuses (%v):\n%q", err, raw)
	}
	if d := treeDiff(fast, &slow, ""); d != "" {
		t.Fatalf("fastParse and the YAML parser differ: %s\n%q", d, raw)
	}
	return true
}

func TestFastParseReadsRenderedManifests(t *testing.T) {
	tests := []struct {
		file string
		fast []bool // per document: whether the fast path must read it
	}{
		{"ingress-nginx.yaml", []bool{true, true, true, true, true}},
		{"prometheus.yaml", []bool{true, true}},
		{"cert-manager.yaml", []bool{true}},
		{"crlf.yaml", []bool{true}},
		{"batch.yaml", []bool{true, true, true, true, true, true}},
		{"lists.yaml", []bool{true, true}},
		{"custom.yaml", []bool{true, true, true}},
		{"json.yaml", []bool{false, false}}, // flow roots are the YAML parser's
		{"anchors.yaml", []bool{false}},     // anchors and aliases too
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			stream, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			docs := Split(stream)
			if len(docs) != len(tt.fast) {
				t.Fatalf("%d documents, the table has %d", len(docs), len(tt.fast))
			}
			for i, d := range docs {
				if got := assertFastAgrees(t, d.Raw); got != tt.fast[i] {
					t.Errorf("document %d: fast path %v, want %v", i, got, tt.fast[i])
				}
			}
		})
	}
	for i, d := range Split(genStream(10)) {
		if !assertFastAgrees(t, d.Raw) {
			t.Errorf("benchmark document %d is not read by the fast path", i)
		}
	}
}

func TestFastParseLeavesTheRestToTheYAMLParser(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"an empty document", "---\n# nothing\n"},
		{"a flow root", "{kind: Pod}\n"},
		{"a sequence root", "- a\n"},
		{"an indented root", "  kind: Pod\n"},
		{"an anchor", "kind: Pod\na: &x b\n"},
		{"an alias", "kind: Pod\na: *x\n"},
		{"a tag", "kind: Pod\na: !!str b\n"},
		{"a merge key", "kind: Pod\n<<: {a: b}\n"},
		{"a complex key", "kind: Pod\n? a\n: b\n"},
		{"a folded scalar", "kind: Pod\na: >\n  b\n"},
		{"an indentation indicator", "kind: Pod\na: |2\n  b\n"},
		{"a multi-line plain scalar", "kind: Pod\na: b\n  c\n"},
		{"a multi-line quoted scalar", "kind: Pod\na: \"b\n  c\"\n"},
		{"an escape in a double-quoted scalar", "kind: Pod\na: \"\\u0062\"\n"},
		{"a multi-line flow collection", "kind: Pod\na: [b,\n  c]\n"},
		{"a pair in a flow sequence", "kind: Pod\na: [b: c]\n"},
		{"a trailing comma", "kind: Pod\na: [b, c,]\n"},
		{"a tab", "kind: Pod\na:\tb\n"},
		{"a lone carriage return", "kind: Pod\ra: b\n"},
		{"a line separator", "kind: Pod\na: b\u2028c\n"},
		{"a control character", "kind: Pod\na: b\x01\n"},
		{"invalid UTF-8", "kind: Pod\na: b\xff\n"},
		{"a byte order mark", "\ufeffkind: Pod\n"},
		{"a directive", "%YAML 1.1\n---\nkind: Pod\n"},
		{"two documents", "kind: Pod\n---\nkind: Pod\n"},
		{"content after the end marker", "kind: Pod\n...\nkind: Pod\n"},
		{"a misaligned key", "kind: Pod\nspec:\n  a: b\n   c: d\n"},
		{"a key after a value on its line", "kind: Pod\na: b: c\n"},
		{"text after a quoted value", "kind: Pod\na: \"b\" c\n"},
		{"an empty block scalar", "kind: Pod\na: |\nb: c\n"},
		{"blank lines longer than a block scalar's indentation", "kind: Pod\na: |\n      \n  b\n"},
		{"a colon starting a flow item", "kind: Pod\na: [:b]\n"},
		{"a key too long for the YAML parser", "kind: Pod\n" + strings.Repeat("k", 900) + strings.Repeat(" ", 200) + ": v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := fastParse([]byte(tt.yaml)); ok {
				t.Errorf("fastParse read %q; it should leave it to the YAML parser", tt.yaml)
			}
		})
	}
}

// TestFastParseAgreesOnGeneratedDocuments stitches documents from lines in
// many forms and checks that the YAML parser agrees whenever fastParse reads
// one.
func TestFastParseAgreesOnGeneratedDocuments(t *testing.T) {
	lines := []string{
		"kind: Pod", "a: b", "a: 'b''c'", "a: \"b c\"", "a: b # c", "a:  b  ", "a: null", "a: ~", "a:", "a: # c",
		"'q k': v", "\"q\": v", "a b: c", "a: -1", "a: :x", "a: x:y", "a: ü", "ü: x", "a: 日本 # ü",
		"- a", "- a: b", "-   a: b", "- - a", "-", "- # c", "- 'x'", "- [a, b]", "- {a: b}",
		"a: []", "a: {}", "a: [b, 'c', \"d\", {e: f}, [g]]", "a: {b: c, 'd': \"e\", f: [g]}", "a: {\"b\":\"c\"}",
		"a: [b c, d-e]", "a: {b: c d}", "a: [ b , c ]", "a  : b", "\"a\" : b", "a:   b  c  ", "-   x", "- a:   b",
		"a: |2", "a: >", "a: &x b", "a: *x", "a: !t b", "? a", ": b", "<<: {a: b}", "a: b\tc", "a: \"\\n\"",
		"a: |", "a: |-", "a: |+", "a: | # c", "- |", "  text", "    more", "  # not a comment", "",
		"   ", "# c", "  # c", "...", "---", "  b: c", "    d: e", "  - f", "    - g", "  - h: i", "  j:",
	}
	rng := uint64(3)
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	read := 0
	for range fastIterations {
		var b strings.Builder
		b.WriteString("kind: Pod\n")
		for range 1 + next(12) {
			b.WriteString([]string{"", "", "", "  ", "    ", "      "}[next(6)])
			b.WriteString(lines[next(len(lines))])
			b.WriteString([]string{"\n", "\n", "\n", "\r\n"}[next(4)])
		}
		raw := b.String()
		if next(5) == 0 {
			raw = strings.TrimSuffix(raw, "\n")
		}
		if assertFastAgrees(t, []byte(raw)) {
			read++
		}
	}
	if read < fastIterations/30 {
		t.Errorf("fastParse read only %d documents; the test exercises too little", read)
	}
}

var fastIterations = 30000

// FuzzFastParse is differential: whenever fastParse reads a document, the
// YAML parser builds the same tree.
func FuzzFastParse(f *testing.F) {
	addTestdataSeeds(f)
	for _, d := range Split(genStream(10)) {
		f.Add(d.Raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		assertFastAgrees(t, raw)
	})
}

// TestFastParseReadsGeneratedBlockDocuments renders random trees in the
// block style the fast path is for, with comments, blank lines, literal
// scalars, flow collections and both kinds of sequence indentation, and
// checks that it reads every one exactly as the YAML parser does.
func TestFastParseReadsGeneratedBlockDocuments(t *testing.T) {
	g := &blockGen{rng: 11}
	for i := range fastIterations / 10 {
		var b strings.Builder
		b.WriteString("kind: Pod\n")
		g.mapping(&b, 0, 0)
		raw := []byte(b.String())
		if !assertFastAgrees(t, raw) {
			t.Fatalf("document %d was not read by the fast path:\n%s", i, raw)
		}
	}
}

type blockGen struct{ rng uint64 }

func (g *blockGen) next(n int) int {
	g.rng ^= g.rng << 13
	g.rng ^= g.rng >> 7
	g.rng ^= g.rng << 17
	return int(g.rng % uint64(n))
}

func (g *blockGen) pick(s ...string) string { return s[g.next(len(s))] }

func (g *blockGen) scalar() string {
	return g.pick("nginx:1.27", "'it''s'", `"a b: c"`, "-x", "a:b", "ü/日本", "null", "~", "1.5", "x # c", "'#'", `"'"`, "a#b")
}

func (g *blockGen) flow(depth int) string {
	if depth > 1 || g.next(3) == 0 {
		return g.pick("[]", "{}", "[a, 'b', \"c\"]", "{a: b, 'c': \"d\"}", "{\"a\":\"b\"}")
	}
	if g.next(2) == 0 {
		return "[" + g.flow(depth+1) + ", " + g.pick("x", "'y'") + "]"
	}
	return "{k: " + g.flow(depth+1) + ", j: " + g.pick("x", "\"y\"") + "}"
}

func (g *blockGen) noise(b *strings.Builder, indent int) {
	switch g.next(6) {
	case 0:
		b.WriteString("\n")
	case 1:
		b.WriteString(strings.Repeat(" ", g.next(indent+3)) + "# note: [x\n")
	}
}

func (g *blockGen) literal(b *strings.Builder, indent int) {
	b.WriteString(g.pick("|", "|-", "|+", "| # c") + "\n")
	in := strings.Repeat(" ", indent+2+g.next(2)*2)
	b.WriteString(in + "first\n") // it sets the indentation
	for range g.next(3) {
		b.WriteString(in + g.pick("line", "  more: indented", "# not a comment", "\"q", "- x") + "\n")
		if g.next(4) == 0 {
			b.WriteString("\n")
		}
	}
}

// value writes what follows "key:" or "- ", for a collection at indent.
func (g *blockGen) value(b *strings.Builder, indent, depth int, inSeq bool) {
	choice := g.next(7)
	if depth > 3 {
		choice = g.next(3)
	}
	switch choice {
	case 0:
		b.WriteString(" " + g.scalar() + "\n")
	case 1:
		b.WriteString(" " + g.flow(0) + g.pick("", " # c") + "\n")
	case 2:
		b.WriteString(" ")
		g.literal(b, indent)
	case 3:
		b.WriteString(g.pick("", " # c") + "\n")
		g.mapping(b, indent+2+g.next(2)*2, depth+1)
	case 4:
		b.WriteString(g.pick("", " # c") + "\n")
		seqIndent := indent + 2
		if !inSeq && g.next(2) == 0 {
			seqIndent = indent // indentless
		}
		g.sequence(b, seqIndent, depth+1)
	case 5:
		b.WriteString("\n") // null
	default:
		b.WriteString(" " + g.scalar() + "\n")
	}
}

func (g *blockGen) mapping(b *strings.Builder, indent, depth int) {
	for i := range 1 + g.next(4) {
		g.noise(b, indent)
		b.WriteString(strings.Repeat(" ", indent) + fmt.Sprintf(g.pick("a%d", "b-c%d", "'d e%d'", `"f%d"`, "g.h/i%d", "ü%d"), i) + ":")
		g.value(b, indent, depth, false)
	}
}

func (g *blockGen) sequence(b *strings.Builder, indent, depth int) {
	for range 1 + g.next(3) {
		g.noise(b, indent)
		b.WriteString(strings.Repeat(" ", indent) + "-")
		switch g.next(4) {
		case 0: // a compact mapping
			gap := 1 + g.next(2)
			b.WriteString(strings.Repeat(" ", gap))
			var m strings.Builder
			g.mapping(&m, indent+1+gap, depth+1)
			b.WriteString(strings.TrimLeft(m.String(), " "))
		default:
			g.value(b, indent, depth, true)
		}
	}
}

func TestFastAndYAMLParsersFindTheSameImages(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fast := mustLocator(t, testdataKinds...)
	slow := mustLocator(t, testdataKinds...)
	slow.slowOnly = true
	streams := [][]byte{genStream(20)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, b)
	}
	for _, stream := range streams {
		for _, d := range Split(stream) {
			pf, errf := fast.Parse(d)
			ps, errs := slow.Parse(d)
			if (errf == nil) != (errs == nil) {
				t.Fatalf("document %q: errors %v and %v", d.Raw, errf, errs)
			}
			if errf != nil {
				continue
			}
			if !slices.Equal(imageList(pf), imageList(ps)) || !slices.EqualFunc(pf.refs, ps.refs, func(a, b imageRef) bool { return a == b }) {
				t.Errorf("document %q:\nfast %q %+v\nslow %q %+v", d.Raw, imageList(pf), pf.refs, imageList(ps), ps.refs)
			}
		}
	}
}
