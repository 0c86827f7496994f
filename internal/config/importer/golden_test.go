package importer

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// importFunc is the signature both importers share.
type importFunc func([]byte) (*config.Config, []Finding, error)

// runGolden translates every testdata/<dir>/*<ext> file and compares the
// configuration (as config.Marshal writes it) with <name>.golden.yaml and
// the findings with <name>.findings. The configuration must also load:
// config.Parse accepts it and gives it back, and its rules compile.
func runGolden(t *testing.T, dir, ext string, fn importFunc) {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs in testdata/%s (%v)", dir, err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ext)
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, fs, err := fn(data)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			out, err := config.Marshal(cfg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			back, err := config.Parse(name+".golden.yaml", out)
			if err != nil {
				t.Fatalf("the translation does not pass validation: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Errorf("Parse(Marshal(translation)) differs from the translation:\n got %#v\nwant %#v", back, cfg)
			}
			if _, err := rules.Compile(back); err != nil {
				t.Errorf("the translation's rules do not compile: %v\n%s", err, out)
			}
			for i, r := range cfg.Rules {
				// rules.Compile normalises repository patterns; the
				// importer must already write them normalised, or they
				// would match other names than it meant.
				if r.Repository != "" && reference.NormalizePattern(r.Repository) != r.Repository {
					t.Errorf("rules[%d].repository %q normalises to %q", i, r.Repository, reference.NormalizePattern(r.Repository))
				}
			}
			var text strings.Builder
			for _, f := range fs {
				text.WriteString(f.String())
				text.WriteByte('\n')
			}
			compareGolden(t, filepath.Join("testdata", dir, name+".golden.yaml"), out)
			compareGolden(t, filepath.Join("testdata", dir, name+".findings"), []byte(text.String()))
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestImageSwapMatchesGoldenFiles(t *testing.T) {
	runGolden(t, "imageswap", ".maps", ImageSwap)
}

func TestK8sImageSwapperMatchesGoldenFiles(t *testing.T) {
	runGolden(t, "k8s-image-swapper", ".yml", K8sImageSwapper)
}
