package workload

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/image-swapper/image-swapper/internal/config"
)

func addTestdataSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, d := range Split(b) {
			f.Add(d.Raw)
		}
	}
	for _, s := range []string{
		"", "---", "---\n...\n---", "a\r\n---\r\n...\r\nb", "\xef\xbb\xbf---\n", "--- |\n---\n", "%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n---\n",
		"kind: Pod\nspec: {containers: [{image: &i a}, {image: *i}, {<<: {image: b}}]}\n",
		"kind: Pod\nspec:\n  containers:\n  - image: |-\n      a\n  - image: >\n      b\n\n  - image: \"c\\\n   d\"\n  - image: e\n     f\n",
		"kind: Pod\nspec: {containers: [{name: \"ü\u2028\", image: 'x''y'}]}\n",
		"kind: App\nspec: {image: a, images: [b, \"c\"], m: {x: d}}\n",
		"kind: List\nitems: [{kind: Pod, spec: {volumes: [{image: {reference: r}}]}}]\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzSplit: Split never panics and loses or adds no byte.
func FuzzSplit(f *testing.F) {
	addTestdataSeeds(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		docs := Split(stream)
		if got := concat(docs); !bytes.Equal(got, stream) {
			t.Fatalf("concatenation of Split(%q) = %q", stream, got)
		}
		for i, d := range docs {
			if d.Index != i || len(d.Raw) == 0 {
				t.Fatalf("document %d: index %d, %d bytes", i, d.Index, len(d.Raw))
			}
		}
	})
}

// FuzzParseRewrite: Parse never panics; Rewrite with the current values
// returns Raw itself; Rewrite with new values finds every scalar and either
// refuses cleanly (shared anchors) or gives a document whose images are the
// new values at the same paths.
func FuzzParseRewrite(f *testing.F) {
	addTestdataSeeds(f)
	l, err := NewLocator([]config.CustomKind{{Kind: "App|Prometheus", Images: []string{".spec.image", ".spec.images[*]", ".spec.m.*"}}})
	if err != nil {
		f.Fatal(err)
	}
	newValue := func(v string) string {
		if len(v)%2 == 0 {
			return "mirror.example.com/" + v
		}
		return "[::1]:5000/" + v
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := l.Parse(Document{Raw: raw})
		if err != nil {
			return
		}
		imgs := p.Images()
		same := make(map[int]string, len(imgs))
		changed := make(map[int]string, len(imgs))
		for i, img := range imgs {
			same[i] = img.Value
			changed[i] = newValue(img.Value)
		}
		out, err := p.Rewrite(same)
		if err != nil || len(out) != len(raw) || (len(raw) > 0 && &out[0] != &raw[0]) {
			t.Fatalf("identity Rewrite: err %v, returned a different slice", err)
		}
		if len(imgs) == 0 || !utf8.Valid(raw) {
			return
		}
		out, err = p.Rewrite(changed)
		if err != nil {
			if errors.Is(err, errLocate) {
				// Every scalar the parser found must be found in the text.
				t.Fatalf("Rewrite: %v\nin: %q", err, raw)
			}
			return // refusals (anchors shared with other fields, …)
		}
		again, err := l.Parse(Document{Raw: out})
		if err != nil {
			t.Fatalf("re-parsing the rewritten document: %v\nin:  %q\nout: %q", err, raw, out)
		}
		var want, got []string
		for i, img := range imgs {
			want = append(want, img.Path+"="+changed[i])
		}
		for _, img := range again.Images() {
			got = append(got, img.Path+"="+img.Value)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("re-parsed images\n got %q\nwant %q\nin:  %q\nout: %q", got, want, raw, out)
		}
	})
}
