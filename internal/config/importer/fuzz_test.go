package importer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/image-swapper/image-swapper/internal/config"
)

// addSeeds adds every testdata file with the extension as a seed.
func addSeeds(f *testing.F, dir, ext string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden"+ext) {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// roundTrip checks that a translation is a configuration image-swapper
// loads as it is.
func roundTrip(t *testing.T, cfg *config.Config) {
	t.Helper()
	out, err := config.Marshal(cfg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := config.Parse("translated.yaml", out)
	if err != nil {
		t.Fatalf("the translation does not pass validation: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("Parse(Marshal(translation)) differs from the translation\n%s", out)
	}
}

// FuzzImageSwap checks that any MAPS file either is refused as not UTF-8
// or translates to a configuration that loads, whose every difference from
// ImageSwap on the sample images a finding explains.
func FuzzImageSwap(f *testing.F) {
	addSeeds(f, "imageswap", ".maps")
	f.Add([]byte("default::a.b/c-\n[REPLACE][!a]*::x\nnoswap_wildcards::,:1\n"))
	f.Add([]byte("docker.io/library::\nquay.io/library::q.io\n[EXACT]::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, fs, err := ImageSwap(data)
		if err != nil {
			if !errors.Is(err, errNotUTF8) || utf8.Valid(data) {
				t.Fatalf("ImageSwap: %v", err)
			}
			return
		}
		lines := len(splitPythonLines(string(data)))
		for _, fd := range fs {
			if fd.Line < 0 || fd.Line > lines || fd.Reason == "" {
				t.Fatalf("finding %q is not about a line of the input (%d lines)", fd, lines)
			}
		}
		roundTrip(t, cfg)
		checkAgreement(t, data, sampleImages)
	})
}

// FuzzK8sImageSwapper checks that any input either is refused with an
// error that says what is wrong or translates to a configuration that
// loads.
func FuzzK8sImageSwapper(f *testing.F) {
	addSeeds(f, "k8s-image-swapper", ".yml")
	f.Add([]byte("target: {aws: {accountId: 1, region: r}}\nsource: {filters: [{jmespath: \"!(obj.kind == 'Pod')\"}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := K8sImageSwapper(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "importer: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		roundTrip(t, cfg)
	})
}
