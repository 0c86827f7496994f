package webhook

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// recordedEvents is an Events that remembers "reason: message".
type recordedEvents struct {
	mu   sync.Mutex
	list []string
}

func (r *recordedEvents) PodEvent(namespace string, pod *corev1.Pod, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, fmt.Sprintf("%s/%s %s: %s", namespace, pod.Name, reason, message))
}

func (r *recordedEvents) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.list {
		_, rest, _ := strings.Cut(e, " ")
		reason, _, _ := strings.Cut(rest, ":")
		out = append(out, reason)
	}
	return out
}

// TestEventsSayWhatAdmissionDid runs dryRunPod (one image to swap, two
// the lists deny, one a warn-mode rule warns about) through /mutate and,
// unpatched, /validate, and checks the Events each endpoint records.
// Unpatched, the image to swap is denied by the allowList too, except
// under dryRun: true, which judges it as swapped.
func TestEventsSayWhatAdmissionDid(t *testing.T) {
	for _, c := range []struct {
		name    string
		config  string
		dryRun  bool
		mirror  *fakeMirror
		mutate  []string
		reasons []string
	}{
		{"denials and a warning are Events; a swap is none", dryRunConfig, false, nil, nil,
			[]string{ReasonImageDenied, ReasonImageDenied, ReasonImageDenied, ReasonImageWarning}},
		{"dryRun: true records what would have been denied", "dryRun: true\n" + dryRunConfig, false, nil, nil,
			[]string{ReasonImageDeniedDryRun, ReasonImageDeniedDryRun, ReasonImageWarning}},
		{"a dry-run request records nothing", dryRunConfig, true, &fakeMirror{down: true}, nil, nil},
		{"audit-mode violations record nothing", strings.Replace(dryRunConfig, "policies:\n", "policies:\n  mode: audit\n", 1), false, nil, nil,
			[]string{ReasonImageWarning}},
		{"a fallback at /mutate is an Event", dryRunConfig, false, &fakeMirror{down: true},
			[]string{ReasonImageSwapFallback}, []string{ReasonImageDenied, ReasonImageDenied, ReasonImageDenied, ReasonImageWarning}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := &recordedEvents{}
			srv := newTestServer(t, "", func(o *Options) {
				o.ConfigPath = writeConfig(t, c.config)
				o.Events = ev
				if c.mirror != nil {
					o.Mirror = c.mirror
				}
			})
			body := dryRunPod
			if c.dryRun {
				body = strings.Replace(body, `"operation":"CREATE",`, `"operation":"CREATE","dryRun":true,`, 1)
			}
			review(t, srv.Handler(), "/mutate", []byte(body))
			if got := ev.reasons(); !slices.Equal(got, c.mutate) {
				t.Errorf("/mutate recorded %q, want reasons %q", ev.list, c.mutate)
			}
			ev.list = nil
			review(t, srv.Handler(), "/validate", []byte(body))
			if got := ev.reasons(); !slices.Equal(got, c.reasons) {
				t.Errorf("/validate recorded %q, want reasons %q", ev.list, c.reasons)
			}
			for _, e := range ev.list {
				if !strings.HasPrefix(e, "default/shop ") {
					t.Errorf("Event %q is not about default/shop", e)
				}
			}
		})
	}
}
