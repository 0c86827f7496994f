// Command seed pushes a multi-platform image of random, incompressible
// layers to a registry and prints the index digest, for bench/mirror.sh.
// Every run writes new random data, so no blob is shared with a previous
// run or between platforms.
//
//	seed -insecure -ref 127.0.0.1:5001/src/big:1.0 \
//	    -platforms linux/amd64,linux/arm64,linux/ppc64le -layers-mib 32,16,8,6,4
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	ref := flag.String("ref", "", "where to push the index (registry/repository:tag); required")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64,linux/ppc64le", "comma-separated platforms, one image each")
	layers := flag.String("layers-mib", "32,16,8,6,4", "comma-separated layer sizes of each image, in MiB")
	insecure := flag.Bool("insecure", false, "allow plain HTTP to the registry")
	artifactType := flag.Bool("artifact-type", false, "keep the artifactType go-containerregistry writes into the index's descriptors (skopeo 1.9.3 drops it, which changes the index digest)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *ref, *platforms, *layers, *insecure, *artifactType); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, ref, platforms, layers string, insecure, artifactType bool) error {
	if ref == "" {
		return errors.New("-ref is required, e.g. -ref 127.0.0.1:5001/src/big:1.0")
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", ref, err)
	}
	sizes, err := parseSizes(layers)
	if err != nil {
		return err
	}
	plats, err := parsePlatforms(platforms)
	if err != nil {
		return err
	}

	start := time.Now()
	rng, err := newRand()
	if err != nil {
		return err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var total int64
	for _, p := range plats {
		img, n, err := randomImage(rng, p, sizes)
		if err != nil {
			return fmt.Errorf("building the %s image: %w", p, err)
		}
		total += n
		if !artifactType {
			img = withoutArtifactType{img}
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithJobs(4)); err != nil {
		return fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seed: pushed %s: %d platforms x %d layers, %.1f MiB of layers, in %s\n",
		tag, len(plats), len(sizes), float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))
	fmt.Println(d.String())
	return nil
}

func parseSizes(s string) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-layers-mib %q: %q is not a positive number of MiB", s, f)
		}
		out = append(out, int64(n*(1<<20)))
	}
	return out, nil
}

func parsePlatforms(s string) ([]*v1.Platform, error) {
	var out []*v1.Platform
	for f := range strings.SplitSeq(s, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(f))
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("-platforms %q: %q is not os/arch[/variant]", s, f)
		}
		out = append(out, p)
	}
	return out, nil
}

// newRand returns a fast generator seeded from the system's: random bytes
// are what real compressed layers look like to a copy.
func newRand() (*rand.ChaCha8, error) {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, err
	}
	return rand.NewChaCha8(seed), nil
}

// randomImage builds an OCI image for p with one random layer per size
// and returns it with the bytes of its layers.
func randomImage(rng io.Reader, p *v1.Platform, sizes []int64) (v1.Image, int64, error) {
	var layers []v1.Layer
	var total int64
	for i, size := range sizes {
		l, err := randomLayer(rng, fmt.Sprintf("%s-%d.bin", strings.ReplaceAll(p.String(), "/", "-"), i), size)
		if err != nil {
			return nil, 0, err
		}
		n, err := l.Size()
		if err != nil {
			return nil, 0, err
		}
		total += n
		layers = append(layers, l)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, 0, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	return img, total, err
}

// withoutArtifactType describes an image in an index without the
// artifactType that go-containerregistry v0.22 derives from the config's
// media type: images built by docker buildx have none, and Debian's skopeo
// 1.9.3 drops the field when it copies an index, which changes its digest.
type withoutArtifactType struct{ v1.Image }

// Descriptor is the image's descriptor with no artifactType.
func (w withoutArtifactType) Descriptor() (*v1.Descriptor, error) {
	d, err := partial.Descriptor(w.Image)
	if err != nil {
		return nil, err
	}
	d.ArtifactType = ""
	return d, nil
}

// randomLayer is a gzipped tar holding one file of size random bytes. The
// gzip stream stores rather than compresses: random bytes do not compress,
// and storing saves the seeding time.
func randomLayer(rng io.Reader, fileName string, size int64) (v1.Layer, error) {
	var buf bytes.Buffer
	buf.Grow(int(size) + 1<<20)
	zw, err := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: fileName, Size: size, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := io.CopyN(tw, rng, size); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
