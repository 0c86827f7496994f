package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/authn"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/rules"
	"github.com/image-swapper/image-swapper/internal/scan"
)

// warningPrefix starts every warning, so that kubectl users see which
// webhook speaks.
const warningPrefix = "image-swapper: "

// maxWarningLength is where kube-apiserver may truncate a warning.
const maxWarningLength = 256

// outcome is what one admission did, for its log line and metrics.
type outcome struct {
	operation string
	namespace string
	pod       string
	dryRun    bool
	// configDryRun is dryRun: true in the configuration: what was
	// decided is reported (wouldDeny, swaps, warnings) but not applied.
	configDryRun bool
	skipped      string
	swaps        []string
	fallbacks    int
	denials      []string
	wouldDeny    []string
	warnings     int
}

// admission is a Pod request ready for decisions.
type admission struct {
	engine *engine.Engine
	pod    *corev1.Pod
	// images are those to decide on: all of them, or on UPDATE those the
	// update changes.
	images []podImage
	ctx    rules.Context
	// dryRun is a dry-run request (kubectl --dry-run=server).
	dryRun bool
	// configDryRun is the configuration's dryRun: true: decide, warn and
	// count as usual, but patch nothing and deny nothing.
	configDryRun bool
	// pull is the Pod's image pull credentials, for the mirror; nil when
	// the server has no PullSecrets.
	pull authn.Keychain
	// uid, operation, user and podName are what the ledger records of the
	// request (podName is generateName followed by '*' when unnamed).
	uid, operation, user, podName string
}

// swap is an image to replace.
type swap struct {
	image  podImage
	target string
}

// prepare reads a Pod request. It returns nil, and says why in out, for a
// request that is not a Pod CREATE or UPDATE: such a request is allowed
// unchanged.
func (s *Server) prepare(ctx context.Context, req *podRequest, out *outcome) (*admission, *requestError) {
	out.operation = string(req.Operation)
	out.dryRun = req.DryRun != nil && *req.DryRun
	out.namespace = req.Namespace
	out.pod = req.Name
	if label, why, ok := skipReason(&req.AdmissionRequest); !ok {
		out.skipped = why
		s.metrics.admissionsSkipped.WithLabelValues(label).Inc()
		return nil, nil
	}
	pod, old := req.Object, req.OldObject
	if pod == nil {
		return nil, badRequest("request.object is missing")
	}
	if req.Operation != admissionv1.Update {
		old = nil
	}
	if out.namespace == "" {
		// Some callers (and older recorded requests) leave request.namespace
		// empty; the object still says where it goes.
		out.namespace = pod.Namespace
	}
	if out.pod == "" {
		out.pod = pod.Name
	}
	if out.pod == "" && pod.GenerateName != "" {
		out.pod = pod.GenerateName + "*"
	}
	e := s.engine(out.namespace)
	out.configDryRun = e.Config().DryRun
	a := &admission{
		engine:       e,
		configDryRun: out.configDryRun,
		pod:          pod,
		images:       changedImages(podImages(&pod.Spec), old),
		dryRun:       out.dryRun,
		uid:          string(req.UID),
		operation:    out.operation,
		user:         req.UserInfo.Username,
		podName:      out.pod,
		ctx: rules.Context{
			Namespace: out.namespace,
			Object: rules.Object{
				Kind:        "Pod",
				Name:        pod.Name,
				Labels:      pod.Labels,
				Annotations: pod.Annotations,
			},
			Workload: podWorkload(pod),
		},
	}
	if len(a.images) > 0 && s.namespaces != nil && out.namespace != "" {
		labels, err := s.namespaces.Labels(ctx, out.namespace)
		if err != nil {
			// Selectors then see only the namespace's name: swaps limited to
			// labelled namespaces do not happen, which keeps the Pod working.
			s.log.Warn("namespace labels unknown; deciding without them", "namespace", out.namespace, "error", err)
		}
		a.ctx.NamespaceLabels = labels
	}
	return a, nil
}

// decide asks the engine about every image. When a mirror may make a
// decision wait (swap: wait, or a registry round trip), the images are
// decided at once, so that the whole Pod fits in the budget of ctx.
func (a *admission) decide(ctx context.Context, m engine.Mirror) []engine.Decision {
	out := make([]engine.Decision, len(a.images))
	if m == nil || len(a.images) < 2 {
		for i, im := range a.images {
			out[i] = a.engine.Admit(ctx, a.subject(im), m)
		}
		return out
	}
	var wg sync.WaitGroup
	for i, im := range a.images {
		wg.Go(func() {
			out[i] = a.engine.Admit(ctx, a.subject(im), m)
		})
	}
	wg.Wait()
	return out
}

// subject is what the engine decides on for im.
func (a *admission) subject(im podImage) engine.Subject {
	return engine.Subject{Image: im.image, Context: a.ctx, PullKeychain: a.pull}
}

// decidesOnly reports whether the admission's decisions must not take
// effect: a dry-run request, or dryRun: true.
func (a *admission) decidesOnly() bool { return a.dryRun || a.configDryRun }

// dryRunWarning is how a warning about what would have happened starts:
// "dry run: " for a dry-run request, "dryRun: " under dryRun: true.
func (a *admission) dryRunWarning() string {
	if a.configDryRun {
		return "dryRun: "
	}
	return "dry run: "
}

// record accounts for the decisions of one admission, in image order.
// Each decision carries everything that was decided; a.dryRun and
// a.configDryRun say that none of it took effect. The record store hooks
// in here.
func (s *Server) record(endpoint string, a *admission, decisions []engine.Decision) {
	for _, d := range decisions {
		s.metrics.decisions.WithLabelValues(endpoint, string(d.Action)).Inc()
	}
	if s.opts.Ledger != nil {
		for _, r := range ledgerRecords(endpoint, a, decisions, time.Now()) {
			s.opts.Ledger.Record(r)
		}
	}
}

// mutate swaps images. It never denies: /validate is the gate. A dry run
// (a dry-run request, or dryRun: true) decides without the mirror (nothing
// is queued or copied) and returns no patch; its warnings say what would
// have been swapped.
func (s *Server) mutate(ctx context.Context, req *podRequest, out *outcome) (*admissionv1.AdmissionResponse, *requestError) {
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	a, rerr := s.prepare(ctx, req, out)
	if rerr != nil || a == nil {
		return resp, rerr
	}
	m := s.mirror
	if a.decidesOnly() {
		m = nil
	}
	if m != nil && s.pulls != nil {
		// Reads nothing yet: only a copy asks the keychain.
		a.pull = s.pulls.Keychain(out.namespace, &a.pod.Spec)
	}
	var swaps []swap
	decisions := a.decide(ctx, m)
	s.record("mutate", a, decisions)
	for i, d := range decisions {
		im := a.images[i]
		switch {
		case d.Action == config.ActionSwap && d.Target != im.image:
			swaps = append(swaps, swap{image: im, target: d.Target})
			out.swaps = append(out.swaps, im.key+"="+d.Target)
			if a.decidesOnly() {
				if a.configDryRun {
					s.metrics.dryRun.WithLabelValues("mutate", "swap").Inc()
				}
				resp.Warnings = appendWarning(resp.Warnings, "%s%s: %s would be swapped to %s", a.dryRunWarning(), im.what, abbreviate(im.image), abbreviate(d.Target))
			} else {
				resp.Warnings = appendWarning(resp.Warnings, "%s: %s -> %s", im.what, abbreviate(im.image), abbreviate(d.Target))
			}
		case d.Fallback:
			out.fallbacks++
			s.metrics.fallbacks.Inc()
			resp.Warnings = appendWarning(resp.Warnings, "%s: kept %s: %s", im.what, abbreviate(im.image), d.LastReason())
			s.event(a, ReasonImageSwapFallback, "%s: kept %s: %s", im.what, abbreviate(im.image), d.LastReason())
		}
	}
	out.warnings = len(resp.Warnings)
	if len(swaps) == 0 || a.decidesOnly() {
		return resp, nil
	}
	patch, err := buildPatch(a.pod.Annotations, swaps)
	if err != nil {
		// Only strings go into the patch, so this is a bug; allowing the Pod
		// unchanged keeps it running.
		s.log.Error("building the patch failed; Pod allowed unchanged", "error", err)
		return resp, nil
	}
	s.metrics.swaps.Add(float64(len(swaps)))
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return resp, nil
}

// validate applies the allow and deny lists and deny rules to the images
// as they will run: enforce violations deny the Pod, warn violations
// become warnings, audit violations are logged and counted. Under
// dryRun: true an enforce violation denies nothing: it becomes a warning
// that says the Pod would have been denied.
func (s *Server) validate(ctx context.Context, req *podRequest, out *outcome) (*admissionv1.AdmissionResponse, *requestError) {
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	a, rerr := s.prepare(ctx, req, out)
	if rerr != nil || a == nil {
		return resp, rerr
	}
	allowList := a.engine.AllowList()
	decisions := make([]engine.Decision, len(a.images))
	for i, im := range a.images {
		// Images are judged as they will run. A dry run gets no patch from
		// /mutate, so it is judged as if the swaps the rules plan were
		// made: its verdict is the one the real request would get.
		subject := engine.Subject{Image: im.image, Context: a.ctx}
		d := a.engine.Gate(subject)
		if a.decidesOnly() {
			d = a.engine.Decide(subject)
		}
		decisions[i] = d
	}
	s.scan(ctx, a, decisions)
	for i, im := range a.images {
		for _, v := range decisions[i].Violations {
			// "image X: X has 2 failing vulnerabilities" says X once.
			image := "image " + im.image + ": "
			if strings.HasPrefix(v.Message, im.image+" ") {
				image = ""
			}
			s.violationEvent(a, im, image, v)
			if v.Mode == config.ModeEnforce && a.configDryRun {
				// Nothing is denied, so it is not counted as a denial.
				s.metrics.dryRun.WithLabelValues("validate", "deny").Inc()
				out.wouldDeny = append(out.wouldDeny, fmt.Sprintf("%s: %s%s", im.what, image, v.Message))
				resp.Warnings = appendWarning(resp.Warnings, "%swould deny the Pod: %s: %s%s", a.dryRunWarning(), im.what, abbreviate(image), v.Message)
				continue
			}
			s.metrics.denials.WithLabelValues(string(v.Mode)).Inc()
			switch v.Mode {
			case config.ModeEnforce:
				msg := fmt.Sprintf("%s: %s%s", im.what, image, v.Message)
				if len(allowList) > 0 && !strings.HasSuffix(v.Rule, ".allowList") && !strings.HasPrefix(v.Rule, engine.RuleScanning) {
					msg += fmt.Sprintf(" (allowed: %s)", strings.Join(allowList, ", "))
				}
				out.denials = append(out.denials, msg)
			case config.ModeWarn:
				resp.Warnings = appendWarning(resp.Warnings, "%s: %s%s (warn mode: admitted)", im.what, abbreviate(image), v.Message)
			default:
				s.log.Info("policy violation (audit mode: admitted)", "namespace", out.namespace, "pod", out.pod, "image", im.image, "rule", v.Rule, "violation", v.Message)
			}
		}
	}
	s.record("validate", a, decisions)
	out.warnings = len(resp.Warnings)
	if len(out.denials) > 0 {
		resp.Allowed = false
		resp.Result = &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    403,
			Reason:  metav1.StatusReasonForbidden,
			Message: warningPrefix + strings.Join(out.denials, "; "),
		}
	}
	return resp, nil
}

// scan applies the vulnerability gate to each image not denied already,
// all at once, so that the scans a Pod waits for share the admission's
// budget (ctx).
func (s *Server) scan(ctx context.Context, a *admission, decisions []engine.Decision) {
	if s.opts.Scans == nil || !a.engine.ScansEnabled() {
		return
	}
	if s.pulls != nil {
		// The scanner reads private images with the Pod's pull secrets.
		a.pull = s.pulls.Keychain(a.ctx.Namespace, &a.pod.Spec)
	}
	ready, _ := s.opts.Scans.(interface{ Ready(image string) bool })
	var wg sync.WaitGroup
	for i, im := range a.images {
		if ready != nil && ready.Ready(im.image) {
			// Known: judged from memory, no goroutine needed.
			a.engine.Scan(ctx, &decisions[i], a.subject(im), s.opts.Scans)
			continue
		}
		wg.Go(func() {
			a.engine.Scan(ctx, &decisions[i], a.subject(im), s.opts.Scans)
		})
	}
	wg.Wait()
	policy := string(a.engine.Config().Security.Scanning.PendingPolicy())
	for _, d := range decisions {
		if d.Scan == nil {
			continue
		}
		s.metrics.scanVerdicts.WithLabelValues(string(d.Scan.Result)).Inc()
		if d.Scan.Result == scan.ResultPending || d.Scan.Result == scan.ResultError {
			s.metrics.scanPending.WithLabelValues(policy).Inc()
		}
	}
}

// abbreviate shortens a sha256 digest in a reference to 12 hex digits,
// for warnings: they are cut at 256 characters, and a whole digest takes
// 71 of them.
func abbreviate(ref string) string {
	const prefix, keep = "@sha256:", 12
	i := strings.Index(ref, prefix)
	if i < 0 || len(ref)-i-len(prefix) != 64 {
		return ref
	}
	return ref[:i+len(prefix)+keep] + "…"
}

// appendWarning adds a warning, shortened to what kube-apiserver keeps.
func appendWarning(ws []string, format string, args ...any) []string {
	w := warningPrefix + fmt.Sprintf(format, args...)
	if len(w) > maxWarningLength {
		cut := maxWarningLength - len("...")
		for cut > 0 && !utf8.RuneStart(w[cut]) {
			cut--
		}
		w = w[:cut] + "..."
	}
	return append(ws, w)
}

// logOutcome writes the one line an admission gets.
func (s *Server) logOutcome(ctx context.Context, endpoint, uid, result string, out *outcome, attrs ...slog.Attr) {
	level := slog.LevelInfo
	msg := "admission"
	if out.skipped != "" {
		// A request the webhook is not meant to get says the webhook
		// configuration's rules are wrong.
		level, msg = slog.LevelWarn, "admission request not for a Pod create or update; allowed unchanged (check the webhook configuration's rules)"
		attrs = append(attrs, slog.String("skipped", out.skipped))
	}
	attrs = append(attrs,
		slog.String("endpoint", endpoint),
		slog.String("uid", uid),
		slog.String("operation", out.operation),
		slog.String("namespace", out.namespace),
		slog.String("pod", out.pod),
		slog.String("result", result),
	)
	if out.dryRun {
		attrs = append(attrs, slog.Bool("dryRun", true))
	}
	if out.configDryRun {
		// Swaps and wouldDeny then say what would have happened.
		attrs = append(attrs, slog.Bool("configDryRun", true))
	}
	if len(out.swaps) > 0 {
		attrs = append(attrs, slog.Any("swaps", out.swaps))
	}
	if out.fallbacks > 0 {
		attrs = append(attrs, slog.Int("fallbacks", out.fallbacks))
	}
	if len(out.denials) > 0 {
		attrs = append(attrs, slog.Any("denials", out.denials))
	}
	if len(out.wouldDeny) > 0 {
		attrs = append(attrs, slog.Any("wouldDeny", out.wouldDeny))
	}
	if out.warnings > 0 {
		attrs = append(attrs, slog.Int("warnings", out.warnings))
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}
