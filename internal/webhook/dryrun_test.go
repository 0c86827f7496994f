package webhook

import (
	"slices"
	"strings"
	"testing"
)

// dryRunPod has an image to swap, one the denyList denies, one the
// allowList denies and one a warn-mode rule warns about.
const dryRunPod = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
 "uid":"d7f00000-0000-4000-8000-000000000001","kind":{"group":"","version":"v1","kind":"Pod"},
 "resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE",
 "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"shop","namespace":"default"},
  "spec":{"containers":[
   {"name":"web","image":"nginx:1.27"},
   {"name":"tool","image":"docker.io/unknown/tool:1"},
   {"name":"metrics","image":"quay.io/prometheus/node-exporter:v1.8.2"},
   {"name":"shell","image":"registry.example.com/busybox:latest"}]}}}}`

const dryRunConfig = `sourceRegistries: [docker.io]
targetRegistry: registry.example.com
policies:
  allowList: ["registry.example.com/*"]
  denyList: ["docker.io/unknown/*"]
rules:
  - name: unpinned-busybox
    image: registry.example.com/busybox:latest
    action: deny
    mode: warn
    message: pin a busybox version
`

// TestConfigDryRunDecidesButChangesNothing runs one Pod through /mutate
// and then /validate (as kube-apiserver does, the patched Pod) twice:
// without dryRun, the Pod is patched and denied; with dryRun: true, it is
// neither, the mirror is left alone, and the warnings and metrics say
// exactly what the first run did.
func TestConfigDryRunDecidesButChangesNothing(t *testing.T) {
	// The real run, as the reference.
	real := newTestServer(t, "", func(o *Options) { o.ConfigPath = writeConfig(t, dryRunConfig) })
	mutated := review(t, real.Handler(), "/mutate", []byte(dryRunPod))
	if mutated.Patch == nil {
		t.Fatalf("without dryRun: no patch, want nginx swapped")
	}
	patched := requestWith(t, []byte(dryRunPod), applyPatch(t, objectOf(t, []byte(dryRunPod)), mutated))
	validated := review(t, real.Handler(), "/validate", patched)
	if validated.Allowed {
		t.Fatalf("without dryRun: the Pod is allowed, want it denied")
	}
	denials := strings.Split(strings.TrimPrefix(validated.Result.Message, warningPrefix), "; ")

	// The dry run, with a mirror that must not be asked.
	m := &fakeMirror{present: map[string]bool{}}
	dry := newTestServer(t, "", func(o *Options) {
		o.ConfigPath = writeConfig(t, "dryRun: true\n"+dryRunConfig)
		o.Mirror = m
	})
	dm := review(t, dry.Handler(), "/mutate", []byte(dryRunPod))
	if dm.Patch != nil || dm.PatchType != nil {
		t.Errorf("dryRun: /mutate patched the Pod: %s", dm.Patch)
	}
	wantSwap := []string{warningPrefix + "dryRun: container web: nginx:1.27 would be swapped to registry.example.com/docker.io/library/nginx:1.27"}
	if !slices.Equal(dm.Warnings, wantSwap) {
		t.Errorf("dryRun: /mutate warnings %q, want %q (the real run warned %q)", dm.Warnings, wantSwap, mutated.Warnings)
	}
	if m.calls != 0 || len(m.queued) != 0 {
		t.Errorf("dryRun: the mirror was asked %d times and queued %q; want it left alone", m.calls, m.queued)
	}

	// /validate gets the Pod unpatched, and judges it as the patched one.
	dv := review(t, dry.Handler(), "/validate", []byte(dryRunPod))
	if !dv.Allowed || dv.Result != nil {
		t.Fatalf("dryRun: /validate denied the Pod: %+v", dv.Result)
	}
	var wouldDeny, warned []string
	for _, w := range dv.Warnings {
		if rest, ok := strings.CutPrefix(w, warningPrefix+"dryRun: "); ok {
			wouldDeny = append(wouldDeny, rest)
		} else {
			warned = append(warned, w)
		}
	}
	if len(wouldDeny) != len(denials) {
		t.Fatalf("dryRun: would-deny warnings %q; the real run denied %q", wouldDeny, denials)
	}
	for i, d := range denials {
		// The denial, without the allowList hint the real one appends,
		// and perhaps cut where kube-apiserver cuts warnings.
		msg, _, _ := strings.Cut(d, " (allowed: ")
		if want := "would deny the Pod: " + msg; len(wouldDeny[i]) < len(want)/2 || !strings.HasPrefix(want, strings.TrimSuffix(wouldDeny[i], "...")) {
			t.Errorf("dryRun: warning\n%q\nwant\n%q\nfor the real denial %q", wouldDeny[i], want, d)
		}
	}
	if !slices.Equal(warned, validated.Warnings) {
		t.Errorf("dryRun: warn-mode warnings %q, want those of the real run %q", warned, validated.Warnings)
	}

	// The metrics say what would have happened, and that nothing did.
	for _, c := range []struct {
		name   string
		labels []string
		real   float64
		dry    float64
	}{
		{"image_swapper_swaps_total", nil, 1, 0},
		{"image_swapper_denials_total", []string{"enforce"}, 2, 0},
		{"image_swapper_denials_total", []string{"warn"}, 1, 1},
		{"image_swapper_dry_run_decisions_total", []string{"mutate", "swap"}, 0, 1},
		{"image_swapper_dry_run_decisions_total", []string{"validate", "deny"}, 0, 2},
		{"image_swapper_decisions_total", []string{"swap", "mutate"}, 1, 1}, // labels in name order: action, endpoint
		{"image_swapper_admission_duration_seconds", []string{"validate", resultDenied}, 1, 0},
		{"image_swapper_admission_duration_seconds", []string{"validate", resultAllowed}, 0, 1},
		{"image_swapper_admission_duration_seconds", []string{"mutate", resultPatched}, 1, 0},
	} {
		if got := metricValue(t, real.metrics, c.name, c.labels...); got != c.real {
			t.Errorf("without dryRun: %s%q = %v, want %v", c.name, c.labels, got, c.real)
		}
		if got := metricValue(t, dry.metrics, c.name, c.labels...); got != c.dry {
			t.Errorf("dryRun: %s%q = %v, want %v", c.name, c.labels, got, c.dry)
		}
	}
}
