package webhook

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	// An RFC 6902 implementation to apply our patches as kube-apiserver
	// does (it uses this very module). It is already in the module graph
	// through client-go, and only the tests import it.
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
)

// applyPatch applies a response's patch to the request's object.
func applyPatch(t *testing.T, object []byte, resp *admissionv1.AdmissionResponse) []byte {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("the patch is not RFC 6902: %v\n%s", err, resp.Patch)
	}
	out, err := patch.Apply(object)
	if err != nil {
		t.Fatalf("the patch does not apply: %v\n%s", err, resp.Patch)
	}
	return out
}

// requestWith returns a copy of a review with its object replaced.
func requestWith(t *testing.T, reviewJSON []byte, object []byte) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(reviewJSON, &r); err != nil {
		t.Fatal(err)
	}
	var obj any
	if err := json.Unmarshal(object, &obj); err != nil {
		t.Fatal(err)
	}
	r["request"].(map[string]any)["object"] = obj
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func objectOf(t *testing.T, reviewJSON []byte) []byte {
	t.Helper()
	var r struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(reviewJSON, &r); err != nil {
		t.Fatal(err)
	}
	return r.Request.Object
}

// TestPatchAppliesAndKeepsUnknownFields applies each patch with an RFC 6902
// implementation and checks that the patched Pod differs from the original
// only in the swapped images and the annotation, so that fields this build
// does not know survive; then it feeds the patched Pod back, as
// reinvocation does, and expects no patch.
func TestPatchAppliesAndKeepsUnknownFields(t *testing.T) {
	cases := []struct {
		name    string
		request string
		changed []string // JSON pointers the patch may change
	}{
		{"the simple sample", "admission/k8s-image-swapper-admissionreview-simple.json",
			[]string{"/spec/initContainers/0/image", "/spec/containers/0/image", "/spec/containers/1/image", "/metadata/annotations"}},
		{"a Pod with every image field and fields from the future", "requests/every-image-field.json",
			[]string{"/spec/initContainers/0/image", "/spec/containers/0/image", "/spec/ephemeralContainers/0/image", "/spec/volumes/1/image/reference", "/metadata/annotations/image-swapper.io~1original-images"}},
		{"an update of one image", "requests/update-changed.json",
			[]string{"/spec/containers/0/image", "/metadata/annotations/image-swapper.io~1original-images"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, "config.yaml")
			in := readFile(t, filepath.Join("testdata", c.request))
			object := objectOf(t, in)
			resp := review(t, s.Handler(), "/mutate", in)
			patched := applyPatch(t, object, resp)

			var before, after any
			if err := json.Unmarshal(object, &before); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(patched, &after); err != nil {
				t.Fatal(err)
			}
			for _, p := range c.changed {
				removePointer(before, p)
				removePointer(after, p)
			}
			if !reflect.DeepEqual(before, after) {
				b, _ := json.MarshalIndent(before, "", " ")
				a, _ := json.MarshalIndent(after, "", " ")
				t.Fatalf("the patch changed more than %v:\nbefore\n%s\nafter\n%s", c.changed, b, a)
			}
			if strings.Contains(string(object), "future") && !strings.Contains(string(patched), `"futureSpecField":{"enabled":true,"list":[1,2,3]}`) {
				t.Errorf("an unknown field was lost:\n%s", patched)
			}

			again := review(t, s.Handler(), "/mutate", requestWith(t, in, patched))
			if again.Patch != nil || len(again.Warnings) > 0 {
				t.Errorf("reinvocation with the patched Pod: patch %s, warnings %q; want neither", again.Patch, again.Warnings)
			}
			if v := review(t, s.Handler(), "/validate", requestWith(t, in, patched)); !v.Allowed {
				t.Errorf("the patched Pod is denied: %s", v.Result.Message)
			}
		})
	}
}

// removePointer deletes the value at a JSON pointer, if there is one.
func removePointer(doc any, pointer string) {
	tokens := strings.Split(pointer, "/")[1:]
	for i, tok := range tokens {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		last := i == len(tokens)-1
		switch v := doc.(type) {
		case map[string]any:
			if last {
				delete(v, tok)
				return
			}
			doc = v[tok]
		case []any:
			var n int
			for _, c := range tok {
				n = n*10 + int(c-'0')
			}
			if n >= len(v) {
				return
			}
			if last {
				v[n] = nil
				return
			}
			doc = v[n]
		default:
			return
		}
	}
}

// TestMirrorAtAdmission checks the swap policies through the handler: the
// mirror decides whether an image is swapped, a miss or an unreachable
// mirror keeps the original with a warning, and a dry run leaves the
// mirror alone.
func TestMirrorAtAdmission(t *testing.T) {
	const target = "registry.example.com/docker.io/library/nginx:1.27"
	request := readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))
	cases := []struct {
		name       string
		mirror     *fakeMirror
		dryRun     bool
		patched    bool
		warning    string
		fallbacks  float64
		queued     []string
		mirrorUsed bool
	}{
		{"a mirrored image is swapped", &fakeMirror{present: map[string]bool{target: true}}, false, true,
			"container app: nginx:1.27 -> " + target, 0, nil, true},
		{"an image the mirror lacks is kept and its copy queued", &fakeMirror{present: map[string]bool{}}, false, false,
			"container app: kept nginx:1.27: not swapped: " + target + " is not in the mirror yet; its copy is queued", 1, []string{target}, true},
		{"an unreachable mirror keeps the original", &fakeMirror{down: true}, false, false,
			"container app: kept nginx:1.27: not swapped: the mirror could not be checked: dial tcp", 1, []string{target}, true},
		{"a dry run does not touch the mirror", &fakeMirror{present: map[string]bool{}}, true, false,
			"dry run: container app: nginx:1.27 would be swapped to " + target, 0, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, "config.yaml", func(o *Options) { o.Mirror = c.mirror })
			body := request
			if c.dryRun {
				body = []byte(strings.Replace(string(request), `"dryRun": false`, `"dryRun": true`, 1))
			}
			resp := review(t, s.Handler(), "/mutate", body)
			if (resp.Patch != nil) != c.patched {
				t.Errorf("patch %s; want a patch: %v", resp.Patch, c.patched)
			}
			if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], warningPrefix+c.warning) {
				t.Errorf("warnings %q, want one starting %q", resp.Warnings, warningPrefix+c.warning)
			}
			if got := metricValue(t, s.metrics, "image_swapper_fallbacks_total"); got != c.fallbacks {
				t.Errorf("fallbacks metric %v, want %v", got, c.fallbacks)
			}
			if !reflect.DeepEqual(c.mirror.queued, c.queued) {
				t.Errorf("queued %q, want %q", c.mirror.queued, c.queued)
			}
			if (c.mirror.calls > 0) != c.mirrorUsed {
				t.Errorf("mirror asked %d times; want it asked: %v", c.mirror.calls, c.mirrorUsed)
			}
		})
	}
}

// TestValidateJudgesImagesAsTheyRun checks that an image the mutating
// webhook did not swap is judged as written: with an allowList, a kept
// original that the list does not allow is denied even though its swap
// would have been allowed.
func TestValidateJudgesImagesAsTheyRun(t *testing.T) {
	s := newTestServer(t, "config-allowlist.yaml")
	in := readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))
	resp := review(t, s.Handler(), "/validate", in)
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "docker.io/library/nginx:1.27 is neither swapped nor in the allowList") {
		t.Fatalf("unswapped nginx: allowed %v, result %+v; want a denial naming the allowList", resp.Allowed, resp.Result)
	}
	if resp.Result.Code != 403 || resp.Result.Reason != "Forbidden" {
		t.Errorf("status code %d reason %q, want 403 Forbidden", resp.Result.Code, resp.Result.Reason)
	}
	mutated := review(t, s.Handler(), "/mutate", in)
	patched := applyPatch(t, objectOf(t, in), mutated)
	if v := review(t, s.Handler(), "/validate", requestWith(t, in, patched)); !v.Allowed {
		t.Errorf("the swapped Pod is denied: %s", v.Result.Message)
	}
}

// TestBudgetBoundsWaiting checks that swap: wait never waits longer than
// the admission's budget: the mirror's copy never finishes, the budget
// ends the wait, and the original is kept.
func TestBudgetBoundsWaiting(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, []byte("sourceRegistries: [docker.io]\ntargetRegistry: registry.example.com\nmirroring: {swap: wait, waitBudget: 29s}\n"))
	m := &blockingMirror{}
	s := newTestServer(t, "", func(o *Options) { o.ConfigPath = cfg; o.Mirror = m; o.Budget = 1 })
	resp := review(t, s.Handler(), "/mutate", readFile(t, filepath.Join("testdata", "requests", "v1beta1.json")))
	if resp.Patch != nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "context deadline exceeded") {
		t.Errorf("patch %s warnings %q; want the original kept because the budget ran out", resp.Patch, resp.Warnings)
	}
}
