package workload

import (
	"slices"
	"strings"
	"testing"
)

// imageForms are ways to write an image field's value in a block mapping
// whose keys are at column 4; %s is a distinct image name.
var imageForms = []string{
	"image: %s",
	"image: %s # pinned",
	"image: %s   ",
	"image: \"%s\"",
	"image: \"%s\" # c",
	"image: '%s'",
	"image: 'it''s-%s'",
	"image: \"esc\\u0061ped-%s\"",
	"image: !!str %s",
	"image: &a%[2]d %s",
	"image: &a%[2]d\n      %s",
	"image: |-\n      %s",
	"image: >-\n      %s\n",
	"image: |\n      %s\n\n",
	"image:\n      %s",
	"image: %s\n      continued",
	"image: \"%s\n      continued\"",
	"image: 'ü-%s'",
	"{image: %s}",
}

// TestRewriteGeneratedDocuments rewrites documents stitched from many ways
// of writing images, around other fields and comments, and checks that the
// output reads back with exactly the new values and the same paths.
func TestRewriteGeneratedDocuments(t *testing.T) {
	rng := uint64(7)
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	l := mustLocator(t)
	newValues := []string{"m.io/x:1", "[::1]:5000/y", "1.5", "it's", "a: b", "ü/z", "x #y", "m.io:5000/q@sha256:00"}
	eol := []string{"\n", "\r\n"}
	images := 0
	for iter := range 3000 {
		nl := eol[next(2)]
		var b strings.Builder
		b.WriteString("# generated\nkind: Pod\nmetadata: {name: \"p\u2028q\"}\nspec:\n  containers:\n")
		n := 1 + next(4)
		anchored := false
		for c := range n {
			form := imageForms[next(len(imageForms))]
			anchored = anchored || c == 0 && strings.Contains(form, "&a")
			img := "reg.example/app-" + string(rune('a'+c)) + ":1"
			var entry string
			if strings.HasPrefix(form, "{") {
				entry = "  - " + strings.Replace(form, "%s", img, 1)
			} else {
				entry = "  - name: c" + string(rune('a'+c)) + "\n    " + strings.NewReplacer("%s", img, "%[2]d", string(rune('0'+c))).Replace(form)
			}
			b.WriteString(entry)
			b.WriteString("\n")
			if next(3) == 0 {
				b.WriteString("    # a comment line\n")
			}
		}
		if anchored && next(2) == 0 {
			b.WriteString("  - name: aliased\n    image: *a0\n")
		}
		raw := strings.ReplaceAll(b.String(), "\n", nl)
		p, err := l.Parse(Document{Raw: []byte(raw)})
		if err != nil {
			t.Fatalf("iteration %d: %v\n%s", iter, err, raw)
		}
		images += len(p.Images())
		nv := map[int]string{}
		byValue := map[string]string{}
		for i, img := range p.Images() {
			v, ok := byValue[img.Value]
			if !ok {
				v = newValues[next(len(newValues))] + "-" + string(rune('a'+i))
				byValue[img.Value] = v
			}
			nv[i] = v
		}
		out, err := p.Rewrite(nv)
		if err != nil {
			t.Fatalf("iteration %d: Rewrite: %v\n%s", iter, err, raw)
		}
		again, err := l.Parse(Document{Raw: out})
		if err != nil {
			t.Fatalf("iteration %d: re-parsing: %v\nin:\n%s\nout:\n%s", iter, err, raw, out)
		}
		var want, got []string
		for i, img := range p.Images() {
			want = append(want, img.Path+"="+nv[i])
		}
		for _, img := range again.Images() {
			got = append(got, img.Path+"="+img.Value)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("iteration %d: re-parsed\n got %q\nwant %q\nin:\n%s\nout:\n%s", iter, got, want, raw, out)
		}
	}
	if images < 6000 {
		t.Errorf("only %d images were rewritten: the generator exercises too little", images)
	}
}
