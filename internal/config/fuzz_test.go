package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte(""))
	f.Add([]byte("- a\n"))
	f.Add([]byte("rules:\n  - targte: x\n  - image: nginx\n    target: \"{target}/{suffix}\"\n"))
	f.Add([]byte("a: &a [x]\nb: *a\nmirroring: {waitBudget: 5s, enabled: yes}\n"))
	f.Add([]byte("targetRegistry: a\n---\nb: c\n"))
	if example, err := os.ReadFile("../../examples/config.yaml"); err == nil {
		f.Add(example)
	}
	if golden, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(golden)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml: ") || len(line) == len("fuzz.yaml: ") {
					t.Fatalf("error line %q does not name the file and a problem; full error:\n%v", line, err)
				}
			}
			return
		}
		// What Parse accepts, Marshal must write back to the same config.
		out, err := Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal of a parsed config: %v", err)
		}
		back, err := Parse("marshalled.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("Parse(Marshal(cfg)) = %#v, want %#v", back, cfg)
		}
	})
}
