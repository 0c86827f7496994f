package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr string
	}{
		{"linux/amd64", Platform{OS: "linux", Architecture: "amd64"}, ""},
		{"linux/arm64/v8", Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, ""},
		{"linux", Platform{}, `platform "linux" must be os/architecture[/variant], e.g. linux/arm64/v8`},
		{"linux//v7", Platform{}, `platform "linux//v7" has an empty part; write os/architecture[/variant], e.g. linux/arm64/v8`},
		{"linux/arm/v7/x", Platform{}, `platform "linux/arm/v7/x" must be os/architecture[/variant], e.g. linux/arm64/v8`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("ParsePlatform(%q) = %v, want error %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Errorf("ParsePlatform(%q) = %+v (%s), %v", tt.in, got, got, err)
			}
		})
	}
}

func TestPlatformMatching(t *testing.T) {
	tests := []struct {
		name  string
		want  Platform
		entry *v1.Platform
		match bool
	}{
		{"same os and architecture", Platform{OS: "linux", Architecture: "amd64"}, &v1.Platform{OS: "linux", Architecture: "amd64"}, true},
		{"no variant asked matches any variant", Platform{OS: "linux", Architecture: "arm"}, &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, true},
		{"arm64/v8 matches arm64 written without variant", Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, &v1.Platform{OS: "linux", Architecture: "arm64"}, true},
		{"arm/v7 matches arm written without variant", Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, &v1.Platform{OS: "linux", Architecture: "arm"}, true},
		{"another variant does not match", Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{"another os does not match", Platform{OS: "linux", Architecture: "amd64"}, &v1.Platform{OS: "windows", Architecture: "amd64"}, false},
		{"an entry without platform does not match", Platform{OS: "linux", Architecture: "amd64"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.want.matches(tt.entry); got != tt.match {
				t.Errorf("%s.matches(%v) = %v, want %v", tt.want, tt.entry, got, tt.match)
			}
		})
	}
}

// rawIndex is an index given as JSON.
type rawIndex struct{ raw []byte }

func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
func (r rawIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.raw))
	return h, err
}
func (r rawIndex) Size() (int64, error) { return int64(len(r.raw)), nil }
func (r rawIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(r.raw))
}
func (r rawIndex) RawManifest() ([]byte, error)    { return r.raw, nil }
func (r rawIndex) Image(v1.Hash) (v1.Image, error) { return nil, errors.New("not here") }
func (r rawIndex) ImageIndex(v1.Hash) (v1.ImageIndex, error) {
	return nil, errors.New("not here")
}

// A buildx index: two images, each with its attestation manifest, and a
// field go-containerregistry does not know.
const buildxIndex = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "x-vendor-field": {"kept": true},
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "size": 100, "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "size": 100, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "size": 50, "annotations": {"vnd.docker.reference.digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "vnd.docker.reference.type": "attestation-manifest"}, "platform": {"architecture": "unknown", "os": "unknown"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", "size": 50, "annotations": {"vnd.docker.reference.digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "vnd.docker.reference.type": "attestation-manifest"}, "platform": {"architecture": "unknown", "os": "unknown"}}
  ]
}`

func TestFilterIndexKeepsAttestationsAndUnknownFields(t *testing.T) {
	f, err := filterIndex(rawIndex{[]byte(buildxIndex)}, []Platform{{OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(f.raw, &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc["x-vendor-field"]) != `{"kept":true}` {
		t.Errorf("unknown field = %s, want it kept", doc["x-vendor-field"])
	}
	var got []string
	for _, m := range f.manifest.Manifests {
		got = append(got, m.Digest.Hex[:1])
	}
	if !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("kept entries = %v, want the arm64 image (b) and its attestation (d)", got)
	}
	if !strings.Contains(string(f.raw), `"vnd.docker.reference.type":"attestation-manifest"`) {
		t.Errorf("the attestation entry lost its annotations: %s", f.raw)
	}
	if h, _ := f.Digest(); h.String() != digestOfBytes(string(f.raw)) {
		t.Errorf("Digest() = %s, not the digest of the filtered JSON", h)
	}
	if _, err := filterIndex(rawIndex{[]byte(buildxIndex)}, []Platform{{OS: "unknown", Architecture: "unknown"}}); err == nil {
		t.Error("filtering for unknown/unknown kept an attestation without its image")
	}
}
