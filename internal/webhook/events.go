package webhook

import (
	"fmt"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

// The reasons of the Warning Events the server records (docs/operations.md,
// "Events").
const (
	// ReasonImageDenied: /validate denied the Pod for an image.
	ReasonImageDenied = "ImageDenied"
	// ReasonImageDeniedDryRun: under dryRun: true, /validate would have
	// denied the Pod for an image, and admitted it.
	ReasonImageDeniedDryRun = "ImageDeniedDryRun"
	// ReasonImageWarning: a warn-mode violation; the Pod was admitted.
	ReasonImageWarning = "ImageWarning"
	// ReasonImageSwapFallback: /mutate planned a swap but kept the original
	// image, because the mirror could not be checked or lacks the image.
	ReasonImageSwapFallback = "ImageSwapFallback"
	// ReasonImagePendingScan: the image had no vulnerability verdict yet;
	// the message says whether the Pod was denied or admitted.
	ReasonImagePendingScan = "ImagePendingScan"
)

// maxEventMessage is what the Events API keeps of a message (events.k8s.io
// refuses longer notes).
const maxEventMessage = 1024

// Events records Kubernetes Events about the Pods admission decides on
// (events.Recorder is one).
type Events interface {
	// PodEvent records a Warning Event about pod, which is in namespace,
	// on the Pod's owner. It returns at once: an admission never waits for
	// an Event, which may be dropped. pod is read only during the call.
	PodEvent(namespace string, pod *corev1.Pod, reason, message string)
}

// event records an Event about the admission's Pod. A dry-run request
// records none: nothing happened, and the webhooks declare no side effects
// on dry run.
func (s *Server) event(a *admission, reason, format string, args ...any) {
	if s.opts.Events == nil || a.dryRun {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxEventMessage {
		cut := maxEventMessage - len("...")
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	s.opts.Events.PodEvent(a.ctx.Namespace, a.pod, reason, msg)
}

// violationEvent records the Event of one violation of image im (image is
// "image X: ", or empty when the message names X). Audit-mode violations
// record none: they are for the logs and metrics only. The message leaves
// out the Pod's name, so that the Pods of one workload denied alike make
// one Event on their owner, counted.
func (s *Server) violationEvent(a *admission, im podImage, image string, v engine.Violation) {
	if image != "" {
		image = "image " + abbreviate(im.image) + ": "
	}
	what := im.what + ": " + image + v.Message
	enforced := v.Mode == config.ModeEnforce
	switch {
	case v.Mode != config.ModeEnforce && v.Mode != config.ModeWarn:
		return
	case v.Rule == engine.RuleScanPending && enforced && a.configDryRun:
		s.event(a, ReasonImagePendingScan, "%s (dryRun: would deny the Pod)", what)
	case v.Rule == engine.RuleScanPending && enforced:
		s.event(a, ReasonImagePendingScan, "%s (Pod denied)", what)
	case v.Rule == engine.RuleScanPending:
		s.event(a, ReasonImagePendingScan, "%s (admitted)", what)
	case enforced && a.configDryRun:
		s.event(a, ReasonImageDeniedDryRun, "dryRun: would deny the Pod: %s", what)
	case enforced:
		s.event(a, ReasonImageDenied, "%s", what)
	default:
		s.event(a, ReasonImageWarning, "%s (warn mode: admitted)", what)
	}
}
