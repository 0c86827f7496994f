package workload

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRewriteGolden rewrites every image of each realistic manifest to its
// mirror and compares with testdata/*.golden.yaml. It also checks, without
// trusting the golden file, that re-parsing the output yields the new values
// at the same paths, that untouched documents are byte-identical and that
// touched ones differ only in image values.
func TestRewriteGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := mustLocator(t, testdataKinds...)
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			stream, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := l.ParseStream(stream)
			if err != nil {
				t.Fatal(err)
			}
			out := rewriteAll(t, ps, mirror)
			golden := "testdata/" + name + ".golden.yaml"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s:\n%s", golden, out)
			}

			// Re-parsing gives the new values at the same places.
			again, err := l.ParseStream(out)
			if err != nil {
				t.Fatalf("re-parsing the output: %v", err)
			}
			wantList := imageList(ps...)
			for i := range wantList {
				k := strings.LastIndexByte(wantList[i], '=')
				wantList[i] = wantList[i][:k+1] + mirror(wantList[i][k+1:])
			}
			if got := imageList(again...); !slices.Equal(got, wantList) {
				t.Errorf("re-parsed images:\n got %q\nwant %q", got, wantList)
			}

			// Only image values changed, document by document.
			docs, outDocs := Split(stream), Split(out)
			if len(docs) != len(outDocs) {
				t.Fatalf("%d documents became %d", len(docs), len(outDocs))
			}
			for i, p := range ps {
				if len(p.Images()) == 0 {
					if !bytes.Equal(docs[i].Raw, outDocs[i].Raw) {
						t.Errorf("document %d has no image but changed", i)
					}
					continue
				}
				if name == "anchors" {
					continue // its block scalar becomes one line; see TestRewriteScalarStyles
				}
				pairs := map[string]string{}
				for _, img := range p.Images() {
					pairs[img.Value] = mirror(img.Value)
				}
				assertOnlyImagesChanged(t, docs[i].Raw, outDocs[i].Raw, pairs)
			}
		})
	}
}

func TestRewriteScalarStyles(t *testing.T) {
	tests := []struct {
		name, in, value, want string
	}{
		{"a plain image stays plain",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1.27\n", "mirror.io/nginx:1.27",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: mirror.io/nginx:1.27\n"},
		{"a comment right after a plain image is kept",
			"kind: Pod\nspec: {}\nspec:\n  containers:\n  - image: nginx # pinned\n    name: a\n", "mirror.io/nginx",
			"kind: Pod\nspec: {}\nspec:\n  containers:\n  - image: mirror.io/nginx # pinned\n    name: a\n"},
		{"trailing spaces after a plain image are kept",
			"kind: Pod\nspec:\n  containers:\n  - image: nginx   \n", "x/y",
			"kind: Pod\nspec:\n  containers:\n  - image: x/y   \n"},
		{"a plain image whose new value starts with '[' becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: app:1\n", "[::1]:5000/app:1",
			"kind: Pod\nspec:\n  containers:\n  - image: \"[::1]:5000/app:1\"\n"},
		{"a plain image whose new value would read as a number becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: app:1\n", "1.5",
			"kind: Pod\nspec:\n  containers:\n  - image: \"1.5\"\n"},
		{"a plain image whose new value would read as a boolean becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: app:1\n", "yes",
			"kind: Pod\nspec:\n  containers:\n  - image: \"yes\"\n"},
		{"a plain image whose new value contains ': ' or ' #' becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: app:1\n", "a: b #c",
			"kind: Pod\nspec:\n  containers:\n  - image: \"a: b #c\"\n"},
		{"a double-quoted image stays double-quoted with escapes",
			"kind: Pod\nspec:\n  containers:\n  - image: \"app:1\"   # pinned\n", "we\"ird\\\t",
			"kind: Pod\nspec:\n  containers:\n  - image: \"we\\\"ird\\\\\\t\"   # pinned\n"},
		{"a double-quoted image with escapes is found",
			"kind: Pod\nspec:\n  containers:\n  - image: \"app\\u003a1\"\n", "b:2",
			"kind: Pod\nspec:\n  containers:\n  - image: \"b:2\"\n"},
		{"a single-quoted image stays single-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: 'app:1' # c\n", "mirror.io/it's:1",
			"kind: Pod\nspec:\n  containers:\n  - image: 'mirror.io/it''s:1' # c\n"},
		{"a single-quoted image with '' escapes is found",
			"kind: Pod\nspec:\n  containers:\n  - image: 'it''s:1'\n", "b:2",
			"kind: Pod\nspec:\n  containers:\n  - image: 'b:2'\n"},
		{"a JSON document stays JSON",
			`{"kind":"Pod","spec":{"containers":[{"name":"a","image":"nginx"},{"name":"b","image":"redis"}]}}`, "[::1]:5000/x",
			`{"kind":"Pod","spec":{"containers":[{"name":"a","image":"[::1]:5000/x"},{"name":"b","image":"[::1]:5000/x"}]}}`},
		{"a plain image in a flow mapping is quoted when it holds a flow indicator",
			"kind: Pod\nspec: {containers: [{name: a, image: nginx}, {name: b, image: redis}]}\n", "[::1]:5000/x",
			"kind: Pod\nspec: {containers: [{name: a, image: \"[::1]:5000/x\"}, {name: b, image: \"[::1]:5000/x\"}]}\n"},
		{"a plain image in a flow mapping stays plain when it can",
			"kind: Pod\nspec: {containers: [{name: a, image: nginx}]}\n", "mirror.io:5000/nginx",
			"kind: Pod\nspec: {containers: [{name: a, image: mirror.io:5000/nginx}]}\n"},
		{"multi-byte characters before the image on its line are counted as characters",
			"kind: Pod\nspec: {containers: [{name: \"日本語-ü\", image: nginx}]}\n", "mirror.io/nginx",
			"kind: Pod\nspec: {containers: [{name: \"日本語-ü\", image: mirror.io/nginx}]}\n"},
		{"CRLF line ends are kept",
			"kind: Pod\r\nspec:\r\n  containers:\r\n  - image: nginx\r\n    name: a\r\n", "mirror.io/nginx",
			"kind: Pod\r\nspec:\r\n  containers:\r\n  - image: mirror.io/nginx\r\n    name: a\r\n"},
		{"a byte order mark is kept and not counted",
			"\xef\xbb\xbf{kind: Pod, spec: {containers: [{image: nginx}]}}\n", "m/nginx",
			"\xef\xbb\xbf{kind: Pod, spec: {containers: [{image: m/nginx}]}}\n"},
		{"a tagged image keeps its tag",
			"kind: Pod\nspec:\n  containers:\n  - image: !!str nginx\n", "m/nginx",
			"kind: Pod\nspec:\n  containers:\n  - image: !!str m/nginx\n"},
		{"an image on the line after its key",
			"kind: Pod\nspec:\n  containers:\n  - image:\n      nginx\n    name: a\n", "m/nginx",
			"kind: Pod\nspec:\n  containers:\n  - image:\n      m/nginx\n    name: a\n"},
		{"a multi-line plain image becomes one line",
			"kind: Pod\nspec:\n  containers:\n  - image: registry.example.com/team\n      /app:1\n    name: a\n", "m/app:1",
			"kind: Pod\nspec:\n  containers:\n  - image: m/app:1\n    name: a\n"},
		{"a multi-line double-quoted image becomes one line",
			"kind: Pod\nspec:\n  containers:\n  - image: \"registry.example.com/team\\\n      /app:1\"\n    name: a\n", "m/app:1",
			"kind: Pod\nspec:\n  containers:\n  - image: \"m/app:1\"\n    name: a\n"},
		{"a literal block image becomes double-quoted and keeps its header comment",
			"kind: Pod\nspec:\n  containers:\n  - image: |- # odd but valid\n      nginx:1.27\n\n    name: a\n", "m/nginx:1.27",
			"kind: Pod\nspec:\n  containers:\n  - image: \"m/nginx:1.27\" # odd but valid\n\n    name: a\n"},
		{"a folded block image becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: >-\n      nginx:1.27\n# next\n", "m/nginx:1.27",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: \"m/nginx:1.27\"\n# next\n"},
		{"an aliased image is rewritten at its anchor",
			"kind: Pod\nspec:\n  containers:\n  - {name: a, image: &img nginx}\n  - {name: b, image: *img}\n", "m/nginx",
			"kind: Pod\nspec:\n  containers:\n  - {name: a, image: &img m/nginx}\n  - {name: b, image: *img}\n"},
		{"an anchor with a comment and a line break before its image",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: &img # the image\n      nginx\n", "m/nginx",
			"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: &img # the image\n      m/nginx\n"},
		{"a single-quoted image given a value single quotes cannot hold becomes double-quoted",
			"kind: Pod\nspec:\n  containers:\n  - image: 'app:1'\n", "a\tb",
			"kind: Pod\nspec:\n  containers:\n  - image: \"a\\tb\"\n"},
		{"a line separator in an earlier quoted scalar counts as a line, as the parser counts it",
			"metadata: {annotations: {a: \"x\u2028y\"}}\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n", "m/nginx",
			"metadata: {annotations: {a: \"x\u2028y\"}}\nkind: Pod\nspec:\n  containers:\n  - image: m/nginx\n"},
		{"a line separator before the image on its line",
			"kind: Pod\nspec: {containers: [{name: \"x\u2028y\", image: nginx}]}\n", "m/nginx",
			"kind: Pod\nspec: {containers: [{name: \"x\u2028y\", image: m/nginx}]}\n"},
		{"a lone carriage return counts as a line, as the parser counts it",
			"kind: Pod\rspec:\r  containers:\r  - image: nginx\r", "m/nginx",
			"kind: Pod\rspec:\r  containers:\r  - image: m/nginx\r"},
		{"an image volume reference is rewritten",
			"kind: Pod\nspec:\n  volumes:\n  - name: v\n    image:\n      reference: quay.io/x/data:v1 # data\n", "m/data:v1",
			"kind: Pod\nspec:\n  volumes:\n  - name: v\n    image:\n      reference: m/data:v1 # data\n"},
	}
	l := mustLocator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, l, tt.in)
			if len(p.Images()) == 0 {
				t.Fatal("no image found")
			}
			nv := map[int]string{}
			for i := range p.Images() {
				nv[i] = tt.value
			}
			out, err := p.Rewrite(nv)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("Rewrite =\n%q\nwant\n%q", out, tt.want)
			}
			for _, img := range mustParse(t, l, string(out)).Images() {
				if img.Value != tt.value {
					t.Errorf("re-parsed %s = %q, want %q", img.Path, img.Value, tt.value)
				}
			}
		})
	}
}

func TestRewriteWithoutChangeReturnsRawItself(t *testing.T) {
	raw := []byte("kind: Pod\nspec:\n  containers:\n  - {name: a, image: nginx}\n  - {name: b, image: redis}\n")
	p := mustParse(t, mustLocator(t), string(raw))
	p.doc.Raw = raw
	tests := []struct {
		name string
		nv   map[int]string
	}{
		{"no new values", nil},
		{"an empty map", map[int]string{}},
		{"the same values", map[int]string{0: "nginx", 1: "redis"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := p.Rewrite(tt.nv)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(raw) || &out[0] != &raw[0] {
				t.Errorf("Rewrite returned a copy, want Raw itself")
			}
		})
	}
}

func TestRewriteChangesOnlyTheGivenIndexes(t *testing.T) {
	in := "kind: Pod\nspec:\n  containers:\n  - {name: a, image: nginx}\n  - {name: b, image: redis}\n"
	p := mustParse(t, mustLocator(t), in)
	out, err := p.Rewrite(map[int]string{1: "m/redis"})
	if err != nil {
		t.Fatal(err)
	}
	want := "kind: Pod\nspec:\n  containers:\n  - {name: a, image: nginx}\n  - {name: b, image: m/redis}\n"
	if string(out) != want {
		t.Errorf("Rewrite = %q, want %q", out, want)
	}
}

func TestRewriteErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		nv   map[int]string
		want string
	}{
		{"an index out of range",
			"kind: Pod\nspec: {containers: [{image: a}]}\n", map[int]string{1: "b"},
			"image index 1 out of range: the document has 1 images"},
		{"a negative index",
			"kind: Pod\nspec: {containers: [{image: a}]}\n", map[int]string{-1: "b"},
			"image index -1 out of range"},
		{"a new value that is not UTF-8",
			"kind: Pod\nspec: {containers: [{image: a}]}\n", map[int]string{0: "b\xff"},
			"not valid UTF-8"},
		{"two images sharing an anchor given different values",
			"kind: Pod\nspec: {containers: [{image: &i a}, {image: *i}]}\n", map[int]string{0: "b", 1: "c"},
			"are one YAML node"},
		{"one image of a shared anchor changed and the other kept",
			"kind: Pod\nspec: {containers: [{image: &i a}, {image: *i}]}\n", map[int]string{1: "c"},
			"are one YAML node"},
		{"an anchor also used by a non-image field",
			"kind: Pod\nmetadata: {annotations: {original: &i a}}\nspec: {containers: [{image: *i}]}\n", map[int]string{0: "b"},
			"also used outside image fields"},
		{"a block scalar with an indentation indicator",
			"kind: Pod\nspec:\n  containers:\n  - image: |2-\n      a\n", map[int]string{0: "b"},
			"indentation indicator"},
	}
	l := mustLocator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, l, tt.in)
			_, err := p.Rewrite(tt.nv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPlainSafe(t *testing.T) {
	tests := []struct {
		name  string
		value string
		flow  bool
		want  bool
	}{
		{"a registry reference", "registry.example.com/docker.io/library/nginx:1.27", false, true},
		{"a reference with a digest", "quay.io/a/b@sha256:0123abcd", false, true},
		{"a host with a port", "localhost:5000/app", false, true},
		{"a reference starting with a digit", "1password/connect:1.7", false, true},
		{"an IPv6 host", "[::1]:5000/app", false, false},
		{"a colon and a space", "a: b", false, false},
		{"a trailing colon", "a:", false, false},
		{"a space and a hash", "a #b", false, false},
		{"a leading star", "*a", false, false},
		{"a leading dash", "-a", false, false},
		{"a number", "1.27", false, false},
		{"a hex number", "0x1F", false, false},
		{"a sexagesimal number", "1:20", false, false},
		{"a date", "2024-09-01", false, false},
		{"null", "null", false, false},
		{"a YAML 1.1 boolean", "On", false, false},
		{"a tab", "a\tb", false, false},
		{"a line separator", "a\u2028b", false, false},
		{"a colon without a space in a flow collection", "localhost:5000/app", true, true},
		{"a question mark in a flow collection", "a?b", true, false},
		{"a comma in a flow collection", "a,b", true, false},
		{"a simple name in a flow collection", "m/nginx", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainSafe(tt.value, tt.flow); got != tt.want {
				t.Errorf("plainSafe(%q, flow=%v) = %v, want %v", tt.value, tt.flow, got, tt.want)
			}
		})
	}
}
