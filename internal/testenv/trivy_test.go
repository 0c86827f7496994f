package testenv

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"
)

func TestTrivyBinaryLookup(t *testing.T) {
	exe := func(t *testing.T, path string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("IMAGE_SWAPPER_TRIVY wins over the tools cache", func(t *testing.T) {
		cache := t.TempDir()
		exe(t, filepath.Join(cache, "trivy-"+TrivyVersion, "trivy"))
		want := exe(t, filepath.Join(t.TempDir(), "my-trivy"))
		t.Setenv("IMAGE_SWAPPER_TOOLS_CACHE", cache)
		t.Setenv(TrivyEnv, want)
		if got := TrivyBinary(t); got != want {
			t.Errorf("TrivyBinary = %q, want %q", got, want)
		}
	})
	t.Run("the tools cache holds the version tools.sh builds", func(t *testing.T) {
		cache := t.TempDir()
		want := exe(t, filepath.Join(cache, "trivy-"+TrivyVersion, "trivy"))
		t.Setenv("IMAGE_SWAPPER_TOOLS_CACHE", cache)
		t.Setenv(TrivyEnv, "")
		if got := TrivyBinary(t); got != want {
			t.Errorf("TrivyBinary = %q, want %q", got, want)
		}
	})
	t.Run("PATH is the last resort", func(t *testing.T) {
		dir := t.TempDir()
		want := exe(t, filepath.Join(dir, "trivy"))
		t.Setenv("IMAGE_SWAPPER_TOOLS_CACHE", t.TempDir())
		t.Setenv(TrivyEnv, "")
		t.Setenv("PATH", dir)
		if got := TrivyBinary(t); got != want {
			t.Errorf("TrivyBinary = %q, want %q", got, want)
		}
	})
	t.Run("no trivy anywhere fails in CI and says how to build it", func(t *testing.T) {
		t.Setenv("IMAGE_SWAPPER_TOOLS_CACHE", t.TempDir())
		t.Setenv(TrivyEnv, "")
		t.Setenv("PATH", t.TempDir())
		t.Setenv("CI", "true")
		r := &recorder{TB: t}
		r.run(func() { TrivyBinary(r) })
		if !strings.Contains(r.failed, ".ci/tools.sh trivy") {
			t.Errorf("failed with %q, want the way to build trivy", r.failed)
		}
	})
	t.Run("a missing IMAGE_SWAPPER_TRIVY fails even outside CI", func(t *testing.T) {
		t.Setenv(TrivyEnv, filepath.Join(t.TempDir(), "nope"))
		t.Setenv("CI", "")
		r := &recorder{TB: t}
		r.run(func() { TrivyBinary(r) })
		if !strings.Contains(r.failed, TrivyEnv) {
			t.Errorf("failed with %q (skipped %q), want a failure naming %s", r.failed, r.skipped, TrivyEnv)
		}
	})
}

func TestTrivyCommandsKeepSecretsOutOfArgvAndStayOffline(t *testing.T) {
	for _, argv := range [][]string{TrivyCommand("trivy", "/cache"), TrivyClientCommand("trivy", "http://127.0.0.1:1")} {
		joined := strings.Join(argv, " ")
		if strings.Contains(joined, "--token") {
			t.Errorf("%s: the token belongs in %s, not argv", joined, TrivyTokenEnv)
		}
		for _, flag := range []string{"--skip-version-check", "--disable-telemetry", "--format json", "--quiet", "--cache-backend memory"} {
			if !strings.Contains(joined, flag) {
				t.Errorf("%s lacks %s", joined, flag)
			}
		}
	}
}

func TestWriteTrivyDBWritesTheSchemaTrivyReads(t *testing.T) {
	before := time.Now().Add(-time.Second)
	cache := WriteTrivyDB(t, []TrivyVuln{
		{ID: "CVE-2099-0001", Package: "vulnpkg", FixedVersion: "1.0.1-r0", Severity: "high",
			VendorSeverity: map[string]string{"alpine": "LOW"}, CVSSv3: 7.5, CVSSv3Vector: "CVSS:3.1/AV:N", Title: "t"},
		{ID: "CVE-2099-0002", Package: "vulnpkg"},
	})

	var meta struct {
		Version                             int
		NextUpdate, UpdatedAt, DownloadedAt time.Time
	}
	data, err := os.ReadFile(filepath.Join(cache, "db", "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatalf("metadata.json: %v", err)
	}
	if meta.Version != TrivyDBSchemaVersion || meta.DownloadedAt.Before(before) || !meta.NextUpdate.After(time.Now()) {
		t.Errorf("metadata.json = %s: want version %d, downloaded now, next update later", data, TrivyDBSchemaVersion)
	}

	db, err := bolt.Open(filepath.Join(cache, "db", "trivy.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]string{
		"data-source/alpine 3.22":           `{"ID":"alpine","Name":"Alpine Secdb","URL":"https://secdb.alpinelinux.org/"}`,
		"alpine 3.22/vulnpkg/CVE-2099-0001": `{"FixedVersion":"1.0.1-r0"}`,
		"alpine 3.22/vulnpkg/CVE-2099-0002": `{}`,
		"vulnerability/CVE-2099-0001":       `{"CVSS":{"nvd":{"V3Score":7.5,"V3Vector":"CVSS:3.1/AV:N"}},"Severity":"HIGH","Title":"t","VendorSeverity":{"alpine":1,"nvd":3}}`,
		"vulnerability/CVE-2099-0002":       `{}`,
	}
	err = db.View(func(tx *bolt.Tx) error {
		for path, value := range want {
			parts := strings.Split(path, "/")
			b := tx.Bucket([]byte(parts[0]))
			for _, p := range parts[1 : len(parts)-1] {
				if b != nil {
					b = b.Bucket([]byte(p))
				}
			}
			if b == nil {
				t.Errorf("%s: no bucket", path)
				continue
			}
			if got := string(b.Get([]byte(parts[len(parts)-1]))); got != value {
				t.Errorf("%s = %s, want %s", path, got, value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteTrivyDBRejectsWhatTrivyCouldNotRead(t *testing.T) {
	tests := []struct {
		name string
		vuln TrivyVuln
		want string
	}{
		{"a severity must be one of Trivy's", TrivyVuln{ID: "CVE-2099-1", Package: "p", Severity: "SEVERE"}, `vulns[0] CVE-2099-1: field Severity: "SEVERE" is not one of UNKNOWN`},
		{"a vendor severity too", TrivyVuln{ID: "CVE-2099-1", Package: "p", VendorSeverity: map[string]string{"alpine": "bad"}}, `field VendorSeverity[alpine]: "bad"`},
		{"an advisory names its package", TrivyVuln{ID: "CVE-2099-1"}, "ID and Package are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeTrivyDB(t.TempDir(), []TrivyVuln{tt.vuln}, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// memRegistry is go-containerregistry's in-memory registry on a loopback
// port; references to it use plain HTTP.
func memRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// layerFiles reads the single layer of img: file name → content.
func layerFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(b)
		}
	}
}

func TestPushAlpineImageIsWhatTrivyTakesForAlpine(t *testing.T) {
	host := memRegistry(t)
	digest := PushAlpineImage(t, host+"/team/alpine:3.22", []ApkPackage{
		{Name: "vulnpkg-libs", Version: "1.0.0-r0", Origin: "vulnpkg"},
		{Name: "musl", Version: "1.2.5-r9"},
	})
	ref, err := name.ParseReference(host + "/team/alpine@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("the pushed image: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
	files := layerFiles(t, img)
	if got := files["etc/alpine-release"]; got != AlpineVersion+"\n" {
		t.Errorf("etc/alpine-release = %q", got)
	}
	if got := files["etc/os-release"]; !strings.Contains(got, "ID=alpine\n") || !strings.Contains(got, "VERSION_ID="+AlpineVersion+"\n") {
		t.Errorf("etc/os-release = %q", got)
	}
	want := "P:vulnpkg-libs\nV:1.0.0-r0\nA:x86_64\n"
	if got := files["lib/apk/db/installed"]; !strings.Contains(got, want) || !strings.Contains(got, "o:vulnpkg\n\nP:musl\nV:1.2.5-r9\n") || !strings.Contains(got, "o:musl\n") {
		t.Errorf("lib/apk/db/installed = %q, want stanzas for vulnpkg-libs (origin vulnpkg) and musl", got)
	}
	if again := PushAlpineImage(t, host+"/team/again:1", []ApkPackage{{Name: "vulnpkg-libs", Version: "1.0.0-r0", Origin: "vulnpkg"}, {Name: "musl", Version: "1.2.5-r9"}}); again != digest {
		t.Errorf("the same packages gave digests %s and %s; want reproducible images", digest, again)
	}
}

func TestPushAlpineIndexHasOneImagePerPlatform(t *testing.T) {
	host := memRegistry(t)
	idx := PushAlpineIndex(t, host+"/team/multi:1.0", map[string][]ApkPackage{
		"linux/amd64": {{Name: "vulnpkg", Version: "1.0.1-r0"}},
		"linux/arm64": {{Name: "vulnpkg", Version: "1.0.0-r0"}},
	})
	ref, err := name.ParseReference(host + "/team/multi:1.0")
	if err != nil {
		t.Fatal(err)
	}
	index, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the pushed index: %v", err)
	}
	if d, _ := index.Digest(); d.String() != idx.Digest {
		t.Errorf("tag points at %s, PushAlpineIndex said %s", d, idx.Digest)
	}
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantArch := map[string]string{"linux/amd64": "A:x86_64\n", "linux/arm64": "A:aarch64\n"}
	if len(m.Manifests) != len(wantArch) {
		t.Fatalf("%d manifests, want %d", len(m.Manifests), len(wantArch))
	}
	for _, desc := range m.Manifests {
		p := desc.Platform.String()
		if idx.Platforms[p] != desc.Digest.String() {
			t.Errorf("%s: index names %s, PushAlpineIndex said %s", p, desc.Digest, idx.Platforms[p])
		}
		img, err := index.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if cfg, err := img.ConfigFile(); err != nil || cfg.Platform().String() != p {
			t.Errorf("%s: image config platform %v (%v)", p, cfg.Platform(), err)
		}
		if got := layerFiles(t, img)["lib/apk/db/installed"]; !strings.Contains(got, wantArch[p]) {
			t.Errorf("%s: installed %q lacks %q", p, got, wantArch[p])
		}
	}
}

func TestAlpineMinorIsTheReleaseBranch(t *testing.T) {
	for in, want := range map[string]string{"3.22.2": "3.22", "3.22": "3.22", "edge": "edge"} {
		if got := alpineMinor(in); got != want {
			t.Errorf("alpineMinor(%q) = %q, want %q", in, got, want)
		}
	}
}

// run calls f in a goroutine of its own, which r's Skipf and Fatalf may
// stop.
func (r *recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
