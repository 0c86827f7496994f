package testenv

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AlpineVersion is the Alpine release that PushAlpineImage's images claim
// to be and that WriteTrivyDB's advisories are for (Trivy matches them by
// the minor release, "3.22"). Its end of life is after 2027-04, so Trivy
// does not warn that the OS is unsupported.
const AlpineVersion = "3.22.2"

// ApkPackage is one installed package of an image PushAlpineImage builds.
type ApkPackage struct {
	// Name and Version are what apk installed ("musl", "1.2.5-r9").
	Name, Version string
	// Origin is the source package the advisories name
	// (TrivyVuln.Package); empty means Name. Subpackages such as
	// "vulnpkg-libs" have the origin "vulnpkg".
	Origin string
}

// AlpineIndex is what PushAlpineIndex pushed.
type AlpineIndex struct {
	// Digest is the index's digest.
	Digest string
	// Platforms maps each platform ("linux/arm64") to its image's
	// manifest digest.
	Platforms map[string]string
}

// apkArch is apk's name of each GOARCH (its A: field), which Trivy
// reports as the package's architecture.
var apkArch = map[string]string{
	"amd64": "x86_64", "arm64": "aarch64", "arm/v7": "armv7", "arm/v6": "armhf",
	"386": "x86", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}

// alpineCreated is the images' creation time: fixed, so that equal
// packages give equal digests.
var alpineCreated = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// PushAlpineImage builds a single-layer linux/amd64 image that Trivy takes
// for Alpine AlpineVersion with pkgs installed, and pushes it to ref (a
// tag, such as "127.0.0.1:5001/team/app:1.0"; plain HTTP is allowed). Its
// layer has etc/alpine-release, etc/os-release and lib/apk/db/installed,
// which are what Trivy's OS and apk analyzers read, and nothing else. It
// returns the manifest's digest. opts are remote's options, e.g.
// remote.WithAuth for a password-protected registry.
func PushAlpineImage(t testing.TB, ref string, pkgs []ApkPackage, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("PushAlpineImage: %v", err)
	}
	img, err := alpineImage(v1.Platform{OS: "linux", Architecture: "amd64"}, pkgs)
	if err == nil {
		err = remote.Write(r, img, opts...)
	}
	if err != nil {
		t.Fatalf("pushing an Alpine image to %s: %v", ref, err)
	}
	return digestOf(t, img)
}

// PushAlpineIndex pushes an OCI image index to ref with one image per
// platform ("linux/amd64", "linux/arm64"; os/arch[/variant]) holding that
// platform's packages, built as PushAlpineImage builds them. Different
// packages per platform make a vulnerability that one platform has and
// another lacks.
func PushAlpineIndex(t testing.TB, ref string, platforms map[string][]ApkPackage, opts ...remote.Option) AlpineIndex {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("PushAlpineIndex: %v", err)
	}
	if len(platforms) == 0 {
		t.Fatal("PushAlpineIndex: no platforms")
	}
	out := AlpineIndex{Platforms: map[string]string{}}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	// Sorted, so that the same platforms give the same index digest.
	for _, p := range slices.Sorted(maps.Keys(platforms)) {
		platform, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatalf("PushAlpineIndex: platform %q: %v", p, err)
		}
		img, err := alpineImage(*platform, platforms[p])
		if err != nil {
			t.Fatalf("PushAlpineIndex: platform %q: %v", p, err)
		}
		out.Platforms[p] = digestOf(t, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	// WriteIndex pushes the images before the index that names them.
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatalf("pushing an Alpine index to %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out.Digest = d.String()
	return out
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// alpineImage is the OCI image of one platform with pkgs installed.
func alpineImage(p v1.Platform, pkgs []ApkPackage) (v1.Image, error) {
	if p.OS != "linux" {
		return nil, fmt.Errorf("OS %q: Alpine images are linux", p.OS)
	}
	goarch := p.Architecture
	if p.Variant != "" {
		goarch += "/" + p.Variant
	}
	arch, ok := apkArch[goarch]
	if !ok {
		return nil, fmt.Errorf("architecture %q: apk has no name for it (known: %s)", goarch, strings.Join(slices.Sorted(maps.Keys(apkArch)), ", "))
	}
	layerTar, err := alpineLayer(arch, pkgs)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	cfg, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: alpineCreated}
	cfg.Config.Cmd = []string{"/bin/sh"}
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: alpineCreated}, CreatedBy: "image-swapper testenv: Alpine " + AlpineVersion + " with synthetic packages"},
	})
}

// alpineLayer is the layer's tar: the files Trivy's Alpine OS analyzer
// (etc/alpine-release, etc/os-release) and apk analyzer
// (lib/apk/db/installed) read.
func alpineLayer(arch string, pkgs []ApkPackage) ([]byte, error) {
	var installed strings.Builder
	for i, p := range pkgs {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("pkgs[%d]: Name and Version are required", i)
		}
		origin := p.Origin
		if origin == "" {
			origin = p.Name
		}
		// One stanza per package, blank-line separated, in the field
		// letters of apk's installed database (apk-tools' package.c):
		// P name, V version, A arch, S size, I installed size,
		// T description, U URL, L license, o origin.
		fmt.Fprintf(&installed, "P:%s\nV:%s\nA:%s\nS:1024\nI:4096\nT:synthetic package %s for tests\nU:https://example.invalid/%s\nL:MIT\no:%s\n\n",
			p.Name, p.Version, arch, p.Name, origin, origin)
	}
	minor := alpineMinor(AlpineVersion)
	files := []struct{ name, body string }{
		{"etc/alpine-release", AlpineVersion + "\n"},
		{"etc/os-release", fmt.Sprintf("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=%s\nPRETTY_NAME=\"Alpine Linux v%s\"\nHOME_URL=\"https://alpinelinux.org/\"\n", AlpineVersion, minor)},
		{"lib/apk/db/installed", installed.String()},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"etc/", "lib/", "lib/apk/", "lib/apk/db/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: alpineCreated}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: alpineCreated}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// alpineMinor is the "3.22" of "3.22.2": Alpine's release branch, which
// names trivy-db's advisory buckets.
func alpineMinor(version string) string {
	if i := strings.Index(version, "."); i >= 0 {
		if j := strings.Index(version[i+1:], "."); j >= 0 {
			return version[:i+1+j]
		}
	}
	return version
}
