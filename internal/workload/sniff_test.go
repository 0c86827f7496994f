package workload

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSniffKind(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		kind string
		ok   bool
	}{
		{"a plain kind", "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n", "ConfigMap", true},
		{"a quoted kind with a comment", "---\n# c\napiVersion: v1\nkind: 'Config''Map' # x\n", "Config'Map", true},
		{"a null kind", "kind: ~\n", "", true},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "", true},
		{"a kind after a block scalar whose content looks like keys", "data: |\n  kind: Deployment\n  x: \"unclosed\nkind: ConfigMap\n", "ConfigMap", true},
		{"nested kinds are not the top-level one", "kind: CustomResourceDefinition\nspec:\n  names:\n    kind: Deployment\n  versions:\n  - name: v1\n    schema:\n      openAPIV3Schema:\n        description: \"The image: it's [here\"\n        properties:\n          image: {type: string, description: 'x: [y'}\n", "CustomResourceDefinition", true},
		{"indentless sequences at column 0", "kind: ClusterRole\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n", "ClusterRole", true},
		{"a quoted scalar spanning lines is refused", "data: \"x\nkind: Secret\"\nkind: Deployment\n", "", false},
		{"a flow collection spanning lines is refused", "data: [x,\nkind: Secret]\n", "", false},
		{"a kind whose plain value may continue is refused", "kind: Foo\n  List\n", "", false},
		{"two kinds are refused", "kind: A\nkind: B\n", "", false},
		{"a merge key at the root is refused", "<<: *x\n", "", false},
		{"an anchor is refused", "a: &x b\nkind: C\n", "", false},
		{"a JSON document is refused", "{\"kind\": \"Pod\"}\n", "", false},
		{"an indented root is refused", "  kind: Pod\n", "", false},
		{"a tab is refused", "kind: Pod\n\tx: y\n", "", false},
		{"a byte order mark is refused", "\xef\xbb\xbfkind: Pod\n", "", false},
		{"a block scalar indented by its blank lines is refused", "a: |\n        \n  text\nkind: Secret\n", "", false},
		{"an explicit indentation indicator is refused", "a: |2\n  x\nkind: Secret\n", "", false},
		{"an escaped double-quoted kind is refused", "kind: \"Po\\u0064\"\n", "", false},
		{"content after an end marker is refused", "kind: A\n...\nkind: B\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, ok := sniffKind([]byte(tt.yaml))
			if kind != tt.kind || ok != tt.ok {
				t.Errorf("sniffKind = %q, %v; want %q, %v", kind, ok, tt.kind, tt.ok)
			}
			if ok {
				assertSniffAgreesWithParser(t, []byte(tt.yaml), kind)
			}
		})
	}
}

// assertSniffAgreesWithParser: when the sniffer is sure, the YAML parser
// (if it accepts the document) finds the same top-level kind.
func assertSniffAgreesWithParser(t *testing.T, raw []byte, kind string) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return
	}
	got := ""
	if len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
		got = scalarAt(root.Content[0], "kind")
	}
	if got != kind {
		t.Fatalf("sniffKind(%q) = %q, the parser reads %q", raw, kind, got)
	}
}

// FuzzSniffKind is differential: whenever sniffKind is sure, the parser
// agrees.
func FuzzSniffKind(f *testing.F) {
	addTestdataSeeds(f)
	for _, s := range []string{
		"kind: A\nb: |\n  x\n  kind: B\nc: \"d\"\n",
		"kind: A\nb: >-\n\n   x\n  y\n",
		"kind: A\nb:\n- |\n  x\n- 'y'\n- [a, {b: c}]\n",
		"a: x\n  - |\n   y\nkind: B\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if kind, ok := sniffKind(raw); ok {
			assertSniffAgreesWithParser(t, raw, kind)
		}
	})
}

// TestSniffKindAgreesWithParserOnGeneratedDocuments stitches documents from
// lines that are each tricky for a line-by-line reader, and checks that the
// parser agrees whenever the sniffer is sure.
func TestSniffKindAgreesWithParserOnGeneratedDocuments(t *testing.T) {
	lines := []string{
		"kind: A", "kind: BList", "  kind: C", "- kind: D", "kind: \"E\"", "kind: null", "kind:", "kind: F # x", "  List",
		"a: |", "a: >-", "p: |+", "q: |-  # c", "- |", "  - |", "- - |", "- k: |",
		"  x", "    y", " z", "", "   ", "        ", "# c", "  # c",
		"b: \"x", "  y\"", "\"", "c: 'x", "'", "d: [x,", "  y]", "]", "e: {a: b}", "h: \"a\\", "i: 'it''s'",
		"j: [\"a\", 'b']", "k: x # y: z", "l: \"q\" # c", "f:", "- a", "  - b", "g: x", "...", "---",
		"m: - x", "? x", ": y", "n: *a", "o: &a b", "r: a: b", "s: x:y", "t: [a: b]", "u: {\"a\":b}",
	}
	rng := uint64(1)
	next := func(n int) int { // xorshift: deterministic and dependency-free
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	sure := 0
	for range sniffIterations {
		var doc []byte
		for range 1 + next(10) {
			doc = append(doc, []string{"", "", "", "  ", "    "}[next(5)]...)
			doc = append(doc, lines[next(len(lines))]...)
			doc = append(doc, '\n')
		}
		if kind, ok := sniffKind(doc); ok {
			sure++
			assertSniffAgreesWithParser(t, doc, kind)
		}
	}
	if sure < 1000 {
		t.Errorf("the sniffer was sure of only %d documents; the test exercises too little", sure)
	}
}

var sniffIterations = 30000
