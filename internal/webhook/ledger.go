package webhook

import (
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/store"
)

// Ledger receives one record for each image an admission decided on. It
// must return at once and never fail the admission: store.Writer queues
// and writes in batches.
type Ledger interface {
	Record(store.AdmissionRecord)
}

// ledgerRecords turns the decisions of one admission into ledger records,
// in image order.
func ledgerRecords(endpoint string, a *admission, decisions []engine.Decision, now time.Time) []store.AdmissionRecord {
	out := make([]store.AdmissionRecord, 0, len(decisions))
	for i, d := range decisions {
		im := a.images[i]
		kind, name := containerOf(im.key)
		r := store.AdmissionRecord{
			Time:          now,
			UID:           a.uid,
			Operation:     a.operation,
			Endpoint:      endpoint,
			DryRun:        a.dryRun || a.configDryRun,
			Namespace:     a.ctx.Namespace,
			Pod:           a.podName,
			OwnerKind:     a.ctx.Workload.Kind,
			OwnerName:     a.ctx.Workload.Name,
			Container:     name,
			ContainerKind: kind,
			User:          a.user,
			Image:         d.Image,
			Normalized:    d.Normalized,
			Action:        string(d.Action),
			Target:        d.Target,
			Digest:        digestOf(d),
			Rule:          d.Rule,
			Fallback:      d.Fallback,
		}
		for _, v := range d.Violations {
			r.Violations = append(r.Violations, store.Violation{Rule: v.Rule, Mode: string(v.Mode), Message: v.Message})
		}
		out = append(out, r)
	}
	return out
}

// containerOf reads a podImage key ("initContainers/setup") as the
// container kind the ledger knows and the container's name. An image
// volume is recorded as a regular container named after the volume.
func containerOf(key string) (kind, name string) {
	field, name, _ := strings.Cut(key, "/")
	switch field {
	case "initContainers":
		return store.ContainerInit, name
	case "ephemeralContainers":
		return store.ContainerEphemeral, name
	}
	return store.ContainerRegular, name
}

// digestOf is the digest a decision names: the target's (a pinned swap),
// else the image's as written; "" when neither names one.
func digestOf(d engine.Decision) string {
	for _, s := range []string{d.Target, d.Image} {
		if ref, err := reference.Parse(s); err == nil && ref.Digest != "" {
			return ref.Digest
		}
	}
	return ""
}
