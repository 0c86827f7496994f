package webhook

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/rules"
)

// OriginalImagesAnnotation records, as a JSON object, the images as they
// were written before a swap, keyed by where they are: "containers/app",
// "initContainers/setup", "ephemeralContainers/debugger", "volumes/data".
const OriginalImagesAnnotation = "image-swapper.io/original-images"

// podTemplateHashLabel is set by the Deployment controller on the
// ReplicaSets it creates and their Pods; the ReplicaSet is named
// "<deployment>-<hash>".
const podTemplateHashLabel = "pod-template-hash"

// podWorkload names the workload a Pod belongs to, from what the Pod says
// (no API call, so admission stays fast and needs no RBAC): its controller
// ownerReference, with a ReplicaSet of apps that carries the Deployment
// controller's name and label taken back to its Deployment. A Pod without
// a controller is its own workload. Further steps (a Job's CronJob) would
// need the API server and are not taken.
func podWorkload(pod *corev1.Pod) rules.Workload {
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return rules.Workload{Kind: "Pod", Name: pod.Name}
	}
	if owner.Kind == "ReplicaSet" && apiGroup(owner.APIVersion) == "apps" {
		if hash := pod.Labels[podTemplateHashLabel]; hash != "" {
			if deployment, ok := strings.CutSuffix(owner.Name, "-"+hash); ok && deployment != "" {
				return rules.Workload{Kind: "Deployment", Name: deployment}
			}
		}
	}
	return rules.Workload{Kind: owner.Kind, Name: owner.Name}
}

// apiGroup is the group of an apiVersion ("apps/v1" → "apps", "v1" → "").
func apiGroup(apiVersion string) string {
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return group
}

// podImage is one image reference in a Pod.
type podImage struct {
	// key names the image in OriginalImagesAnnotation.
	key string
	// what names it for people: "container app", "image volume data".
	what string
	// path is the JSON pointer of the image string.
	path  string
	image string
}

// podImages lists the image references of a Pod, in spec order.
func podImages(spec *corev1.PodSpec) []podImage {
	n := len(spec.InitContainers) + len(spec.Containers) + len(spec.EphemeralContainers)
	for i := range spec.Volumes {
		if spec.Volumes[i].Image != nil {
			n++
		}
	}
	out := make([]podImage, 0, n)
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		out = append(out, containerImage("initContainers", "init container", i, c.Name, c.Image))
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		out = append(out, containerImage("containers", "container", i, c.Name, c.Image))
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i]
		out = append(out, containerImage("ephemeralContainers", "ephemeral container", i, c.Name, c.Image))
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.Image == nil {
			continue
		}
		out = append(out, podImage{
			key:   "volumes/" + v.Name,
			what:  "image volume " + v.Name,
			path:  "/spec/volumes/" + strconv.Itoa(i) + "/image/reference",
			image: v.Image.Reference,
		})
	}
	return out
}

func containerImage(field, what string, i int, name, image string) podImage {
	return podImage{
		key:   field + "/" + name,
		what:  what + " " + name,
		path:  "/spec/" + field + "/" + strconv.Itoa(i) + "/image",
		image: image,
	}
}

// changedImages drops the images of pod that old already had at the same
// place: a Pod UPDATE decides only on what the update changes, so that a
// policy change never swaps a running container's image (which would
// restart it) or blocks an unrelated update such as removing a finalizer.
func changedImages(images []podImage, old *corev1.Pod) []podImage {
	if old == nil {
		return images
	}
	before := make(map[string]string, len(images))
	for _, im := range podImages(&old.Spec) {
		before[im.key] = im.image
	}
	out := images[:0:0]
	for _, im := range images {
		if prev, ok := before[im.key]; ok && prev == im.image {
			continue
		}
		out = append(out, im)
	}
	return out
}

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// buildPatch returns the JSON patch that replaces the swapped images and
// records their originals in OriginalImagesAnnotation, merged with what
// an earlier admission recorded. It touches nothing else, so fields this
// build does not know survive.
func buildPatch(annotations map[string]string, swaps []swap) ([]byte, error) {
	ops := make([]patchOp, 0, len(swaps)+1)
	originals := make(map[string]string, len(swaps))
	if prev, ok := annotations[OriginalImagesAnnotation]; ok {
		// A value that is not a JSON object of strings (edited by hand) is
		// replaced rather than trusted.
		var recorded map[string]string
		if json.Unmarshal([]byte(prev), &recorded) == nil {
			maps.Copy(originals, recorded)
		}
	}
	for _, s := range swaps {
		ops = append(ops, patchOp{Op: "replace", Path: s.image.path, Value: s.target})
		originals[s.image.key] = s.image.image
	}
	recorded, err := json.Marshal(originals)
	if err != nil {
		return nil, err
	}
	if annotations == nil {
		ops = append(ops, patchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{OriginalImagesAnnotation: string(recorded)}})
	} else {
		// "add" sets the member whether or not it exists.
		ops = append(ops, patchOp{Op: "add", Path: "/metadata/annotations/" + escapePointer(OriginalImagesAnnotation), Value: string(recorded)})
	}
	return json.Marshal(ops)
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string { return pointerEscaper.Replace(s) }

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")
