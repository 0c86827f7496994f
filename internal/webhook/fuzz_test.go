package webhook

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzMutate sends arbitrary bodies to both admission endpoints: the
// answer is a 4xx or an AdmissionReview that answers the request's uid,
// never a 5xx or a panic.
func FuzzMutate(f *testing.F) {
	for _, dir := range []string{"admission", "requests"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE","object":{"metadata":{"annotations":null},"spec":{"volumes":[{"name":"v","image":null}],"ephemeralContainers":[{}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"operation":"UPDATE","object":{"spec":{"containers":[{"name":"a","image":"@@"}]}},"oldObject":null}}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})

	s := newTestServer(f, "config.yaml", func(o *Options) { o.Logger = nil })
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, endpoint := range []string{"/mutate", "/validate"} {
			rec := post(s.Handler(), endpoint, body)
			if rec.Code >= 400 && rec.Code < 500 {
				continue
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: status %d (%s), want 200 or a 4xx", endpoint, rec.Code, rec.Body)
			}
			var in, out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &in); err != nil {
				t.Fatalf("%s: a body that does not decode was answered: %v", endpoint, err)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("%s: the answer is not an AdmissionReview (%v):\n%s", endpoint, err, rec.Body)
			}
			if out.Response.UID != in.Request.UID || out.APIVersion != in.APIVersion {
				t.Fatalf("%s: answered uid %q in %s, want %q in %s", endpoint, out.Response.UID, out.APIVersion, in.Request.UID, in.APIVersion)
			}
			if out.Response.Patch != nil && !json.Valid(out.Response.Patch) {
				t.Fatalf("%s: the patch is not JSON: %s", endpoint, out.Response.Patch)
			}
		}
	})
}
