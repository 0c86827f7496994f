package registry

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// indexBytes sums the blob sizes of an index's images.
func indexBytes(b *testing.B, idx v1.ImageIndex) int64 {
	im, err := idx.IndexManifest()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, m := range im.Manifests {
		img, _ := idx.Image(m.Digest)
		layers, _ := img.Layers()
		for _, l := range layers {
			s, _ := l.Size()
			n += s
		}
		cfg, _ := img.RawConfigFile()
		n += int64(len(cfg))
	}
	return n
}

// BenchmarkCopyIndex copies a 3-platform index (2 layers each) to an
// empty in-process registry: handshake, blobs, manifests, verification.
func BenchmarkCopyIndex(b *testing.B) {
	src := newTestRegistry(b)
	idx := platformIndex(b, "linux/amd64", "linux/arm64", "linux/s390x")
	seed(b, src.Host+"/src/app:1.0", idx)
	b.SetBytes(indexBytes(b, idx))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := newTestRegistry(b)
		c := newClient(b, insecureConfig(src, dst))
		b.StartTimer()
		res, err := c.Copy(b.Context(), src.ref(b, "src/app:1.0"), dst.ref(b, "mirror/app:1.0"), CopyOptions{})
		if err != nil || !res.Copied {
			b.Fatalf("Copy() = %+v, %v", res, err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
}

// BenchmarkCopyIndexUpToDate is the sync loop's common case: the target
// has the image (one HEAD at each end).
func BenchmarkCopyIndexUpToDate(b *testing.B) {
	src, dst := newTestRegistry(b), newTestRegistry(b)
	seed(b, src.Host+"/src/app:1.0", platformIndex(b, "linux/amd64", "linux/arm64", "linux/s390x"))
	c := newClient(b, insecureConfig(src, dst))
	from, to := src.ref(b, "src/app:1.0"), dst.ref(b, "mirror/app:1.0")
	if _, err := c.Copy(b.Context(), from, to, CopyOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, err := c.Copy(b.Context(), from, to, CopyOptions{}); err != nil || res.Copied {
			b.Fatalf("Copy() = %+v, %v", res, err)
		}
	}
}

// BenchmarkExists is the admission check: one HEAD with a cached token.
func BenchmarkExists(b *testing.B) {
	reg := newTestRegistry(b)
	seed(b, reg.Host+"/src/app:1.0", platformIndex(b, "linux/amd64"))
	c := newClient(b, insecureConfig(reg))
	ref := reg.ref(b, "src/app:1.0")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := c.Exists(b.Context(), ref); err != nil || !ok {
			b.Fatalf("Exists() = %v, %v", ok, err)
		}
	}
}
