package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden posts AdmissionReviews (the shared real-world samples and
// cases derived from them) and compares the answers with golden files:
// NAME.json is the AdmissionReview answered, exactly; NAME.patch.json is
// its JSON patch decoded, for people to read.
func TestGolden(t *testing.T) {
	cases := []struct {
		name     string
		config   string
		endpoint string
		request  string
	}{
		{"the simple sample swaps docker hub, k8s.gcr.io and the init container but not ECR or GAR", "config.yaml", "/mutate", "admission/k8s-image-swapper-admissionreview-simple.json"},
		{"the simple sample passes validation", "config.yaml", "/validate", "admission/k8s-image-swapper-admissionreview-simple.json"},
		{"a namespace without the mirroring label gets no patch", "config.yaml", "/mutate", "admission/k8s-image-swapper-admissionreview-imagepullsecrets.json"},
		{"a request captured from GKE swaps index.docker.io with its digest", "config.yaml", "/mutate", "admission/admission-sidecar-testrequest-full-image.json"},
		{"kube-system is left alone", "config.yaml", "/mutate", "requests/kube-system.json"},
		{"the opt-out label turns swapping off", "config.yaml", "/mutate", "requests/opt-out.json"},
		{"a dry run warns and returns no patch", "config.yaml", "/mutate", "requests/dry-run.json"},
		{"an update that changes no image gets no patch", "config.yaml", "/mutate", "requests/update-unchanged.json"},
		{"an update that changes one image swaps only it and keeps recorded originals", "config.yaml", "/mutate", "requests/update-changed.json"},
		{"a Deployment is allowed unchanged", "config.yaml", "/mutate", "requests/deployment.json"},
		{"a ReplicaSet's five-container Pod swaps its docker hub images", "config.yaml", "/mutate", "requests/pod-5-containers.json"},
		{"a v1beta1 review is answered in v1beta1", "config.yaml", "/mutate", "requests/v1beta1.json"},
		{"every image field is swapped and unknown fields are untouched", "config.yaml", "/mutate", "requests/every-image-field.json"},
		{"mutation swaps what policy allows and leaves denied images alone", "config.yaml", "/mutate", "requests/policy.json"},
		{"validation denies an enforced denyList entry and warns for a warn-mode rule", "config.yaml", "/validate", "requests/policy.json"},
		{"with an allowList an image that is neither swapped nor allowed is denied", "config-allowlist.yaml", "/validate", "requests/policy.json"},
		{"a dry run is still validated", "config-allowlist.yaml", "/validate", "requests/dry-run.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, c.config)
			rec := post(s.Handler(), c.endpoint, readFile(t, filepath.Join("testdata", c.request)))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", rec.Code, rec.Body)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, rec.Body.Bytes(), "", "  "); err != nil {
				t.Fatalf("the answer is not JSON: %v\n%s", err, rec.Body)
			}
			got.WriteByte('\n')
			base := filepath.Join("testdata", "golden", goldenName(c.request, c.config, c.endpoint))
			compareGolden(t, base+".json", got.Bytes())

			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			var patch bytes.Buffer
			if out.Response.Patch != nil {
				if err := json.Indent(&patch, out.Response.Patch, "", "  "); err != nil {
					t.Fatalf("the patch is not JSON: %v\n%s", err, out.Response.Patch)
				}
				patch.WriteByte('\n')
			}
			compareGolden(t, base+".patch.json", patch.Bytes())
		})
	}
}

// goldenName names a case's golden files after its request, config and
// endpoint: "policy.config-allowlist.validate".
func goldenName(request, config, endpoint string) string {
	name := filepath.Base(request)
	name = name[:len(name)-len(filepath.Ext(name))]
	cfg := filepath.Base(config)
	cfg = cfg[:len(cfg)-len(filepath.Ext(cfg))]
	return name + "." + cfg + "." + endpoint[1:]
}

// compareGolden compares got with the golden file; an empty got means the
// file must not exist.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) && len(got) == 0 {
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
