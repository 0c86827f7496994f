package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/image-swapper/image-swapper/internal/config"
)

// ParsePlatform parses "os/architecture[/variant]", as written in
// mirroring.platforms ("linux/amd64", "linux/arm64/v8").
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q must be os/architecture[/variant], e.g. linux/arm64/v8", s)
	}
	for _, p := range parts {
		if p == "" {
			return Platform{}, fmt.Errorf("platform %q has an empty part; write os/architecture[/variant], e.g. linux/arm64/v8", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// ParsePlatforms parses a list of platforms; errors name key[i].
func ParsePlatforms(key string, list []string) ([]Platform, error) {
	out := make([]Platform, 0, len(list))
	for i, s := range list {
		p, err := ParsePlatform(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// String writes the platform as ParsePlatform reads it.
func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Architecture
	}
	return p.OS + "/" + p.Architecture + "/" + p.Variant
}

// matches reports whether an index entry's platform is p. A platform
// without a variant matches every variant of its architecture; arm64's
// variant defaults to v8 and arm's to v7, as containerd normalises them.
func (p Platform) matches(d *v1.Platform) bool {
	if d == nil || p.OS != d.OS || p.Architecture != d.Architecture {
		return false
	}
	return p.Variant == "" || defaultVariant(p.Architecture, p.Variant) == defaultVariant(d.Architecture, d.Variant)
}

func defaultVariant(arch, variant string) string {
	if variant != "" {
		return variant
	}
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	}
	return ""
}

// Docker's buildx stores attestations as index entries that name the image
// they describe in these annotations.
const (
	annotationReferenceType   = "vnd.docker.reference.type"
	annotationReferenceDigest = "vnd.docker.reference.digest"
	attestationManifest       = "attestation-manifest"
)

// filteredIndex is a source index with only some of its entries. Its
// manifest is the source's JSON with the "manifests" array filtered, every
// other field and every kept entry (annotations included) byte for byte, so
// it digests differently from the source: a new index. Children are read
// from the source index.
type filteredIndex struct {
	src      v1.ImageIndex
	raw      []byte
	digest   v1.Hash
	manifest *v1.IndexManifest
}

// filterIndex keeps the entries of idx whose platform is one of platforms,
// plus buildx attestation entries for kept images.
func filterIndex(idx v1.ImageIndex, platforms []Platform) (*filteredIndex, error) {
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing index: %w", err)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(doc["manifests"], &entries); err != nil {
		return nil, fmt.Errorf("parsing index manifests: %w", err)
	}
	descs := make([]v1.Descriptor, len(entries))
	kept := map[string]bool{}
	var available []string
	for i, e := range entries {
		if err := json.Unmarshal(e, &descs[i]); err != nil {
			return nil, fmt.Errorf("parsing index entry %d: %w", i, err)
		}
		d := descs[i]
		if d.Platform != nil && d.Annotations[annotationReferenceType] == "" {
			available = append(available, platformString(d.Platform))
		}
		for _, p := range platforms {
			if p.matches(d.Platform) && d.Annotations[annotationReferenceType] == "" {
				kept[d.Digest.String()] = true
				break
			}
		}
	}
	if len(kept) == 0 {
		return nil, noPlatformError(platforms, available)
	}
	var keep []json.RawMessage
	im := &v1.IndexManifest{}
	if err := json.Unmarshal(raw, im); err != nil {
		return nil, fmt.Errorf("parsing index: %w", err)
	}
	im.Manifests = nil
	for i, d := range descs {
		if kept[d.Digest.String()] || d.Annotations[annotationReferenceType] == attestationManifest && kept[d.Annotations[annotationReferenceDigest]] {
			keep = append(keep, entries[i])
			im.Manifests = append(im.Manifests, d)
		}
	}
	list, err := json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	doc["manifests"] = list
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	return &filteredIndex{src: idx, raw: out, digest: h, manifest: im}, nil
}

// noPlatformError says an index has none of the platforms wanted, and
// which it has.
func noPlatformError(platforms []Platform, available []string) error {
	want := make([]string, len(platforms))
	for i, p := range platforms {
		want[i] = p.String()
	}
	has := strings.Join(available, ", ")
	if has == "" {
		has = "no image platform"
	}
	return fmt.Errorf("the index has none of the platforms %s (it has %s)", strings.Join(want, ", "), has)
}

func platformString(p *v1.Platform) string {
	return Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}.String()
}

// RawManifest returns the filtered JSON.
func (f *filteredIndex) RawManifest() ([]byte, error) { return f.raw, nil }

// Digest is the digest of the filtered JSON.
func (f *filteredIndex) Digest() (v1.Hash, error) { return f.digest, nil }

// Size is the size of the filtered JSON.
func (f *filteredIndex) Size() (int64, error) { return int64(len(f.raw)), nil }

// IndexManifest lists only the kept entries, so that a push writes only
// their children.
func (f *filteredIndex) IndexManifest() (*v1.IndexManifest, error) { return f.manifest.DeepCopy(), nil }

// Layer lets children of unknown media types be copied as blobs, as the
// source index would.
func (f *filteredIndex) Layer(h v1.Hash) (v1.Layer, error) {
	if l, ok := f.src.(interface {
		Layer(v1.Hash) (v1.Layer, error)
	}); ok {
		return l.Layer(h)
	}
	return nil, fmt.Errorf("index entry %s has media type that cannot be copied", h)
}

// MediaType is the source index's media type (OCI index or Docker list).
func (f *filteredIndex) MediaType() (types.MediaType, error) { return f.src.MediaType() }

// Image reads a child image from the source.
func (f *filteredIndex) Image(h v1.Hash) (v1.Image, error) { return f.src.Image(h) }

// ImageIndex reads a child index from the source.
func (f *filteredIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return f.src.ImageIndex(h) }

var _ v1.ImageIndex = (*filteredIndex)(nil)

// MirrorCopyOptions are the copy options mirroring configures: its
// platforms, copySignatures and overwrite.
func MirrorCopyOptions(m config.Mirroring) (CopyOptions, error) {
	platforms, err := ParsePlatforms("mirroring.platforms", m.Platforms)
	if err != nil {
		return CopyOptions{}, err
	}
	if len(platforms) == 0 {
		platforms = nil
	}
	return CopyOptions{Platforms: platforms, Overwrite: m.Overwrite, CopySignatures: m.CopySignatures}, nil
}
