package workload

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []string
		lines []int
	}{
		{"an empty stream has no documents", "", nil, nil},
		{"a stream without separators is one document", "a: 1\nb: 2\n", []string{"a: 1\nb: 2\n"}, []int{1}},
		{"a leading separator opens the first document", "---\na: 1\n---\nb: 2\n", []string{"---\na: 1\n", "---\nb: 2\n"}, []int{1, 3}},
		{"a leading comment stays with the first document", "# chart\n---\na: 1\n---\nb: 2", []string{"# chart\n---\na: 1\n", "---\nb: 2"}, []int{1, 4}},
		{"a separator with a comment or spaces splits", "a: 1\n---   # next\nb: 2\n--- \nc: 3\n", []string{"a: 1\n", "---   # next\nb: 2\n", "--- \nc: 3\n"}, []int{1, 2, 4}},
		{"a separator followed by content splits", "a: 1\n--- {b: 2}\n--- |\n  text\n", []string{"a: 1\n", "--- {b: 2}\n", "--- |\n  text\n"}, []int{1, 2, 3}},
		{"consecutive separators make empty documents", "---\n---\na: 1\n---\n", []string{"---\n", "---\na: 1\n", "---\n"}, []int{1, 2, 4}},
		{"lines that only start with dashes do not split", "a: |\n  ---\n----\n---x\n", []string{"a: |\n  ---\n----\n---x\n"}, []int{1}},
		{"an end marker closes a document and content after it starts the next", "a: 1\n...\nb: 2\n", []string{"a: 1\n...\n", "b: 2\n"}, []int{1, 3}},
		{"comments after an end marker stay with it", "a: 1\n...\n# tail\n---\nb: 2\n", []string{"a: 1\n...\n# tail\n", "---\nb: 2\n"}, []int{1, 4}},
		{"a directive after an end marker belongs to the next document", "a: 1\n...\n%YAML 1.2\n---\nb: 2\n", []string{"a: 1\n...\n", "%YAML 1.2\n---\nb: 2\n"}, []int{1, 3}},
		{"CRLF line ends are recognised", "---\r\na: 1\r\n---\r\nb: 2\r\n", []string{"---\r\na: 1\r\n", "---\r\nb: 2\r\n"}, []int{1, 3}},
		{"a BOM before the first separator is kept", "\xef\xbb\xbf---\na: 1\n---\nb: 2\n", []string{"\xef\xbb\xbf---\na: 1\n", "---\nb: 2\n"}, []int{1, 3}},
		{"a stream without a final newline keeps its last line", "a: 1\n---\nb: 2", []string{"a: 1\n", "---\nb: 2"}, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs := Split([]byte(tt.in))
			var got []string
			var lines []int
			for i, d := range docs {
				if d.Index != i {
					t.Errorf("document %d has index %d", i, d.Index)
				}
				got = append(got, string(d.Raw))
				lines = append(lines, d.Line)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Split(%q) =\n %q\nwant %q", tt.in, got, tt.want)
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("lines = %v, want %v", lines, tt.lines)
			}
		})
	}
}

func TestSplitRoundTripsTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			stream, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if got := concat(Split(stream)); !bytes.Equal(got, stream) {
				t.Errorf("concatenation of Split differs from the input")
			}
		})
	}
}

func TestSplitDocumentsCannotGrowIntoTheirNeighbours(t *testing.T) {
	docs := Split([]byte("a: 1\n---\nb: 2\n"))
	_ = append(docs[0].Raw, "XXXX"...)
	if string(docs[1].Raw) != "---\nb: 2\n" {
		t.Errorf("appending to one document changed the next: %q", docs[1].Raw)
	}
}

func concat(docs []Document) []byte {
	var b []byte
	for _, d := range docs {
		b = append(b, d.Raw...)
	}
	return b
}
