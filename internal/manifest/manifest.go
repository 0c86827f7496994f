// Package manifest applies engine decisions to a stream of Kubernetes
// manifests: the work behind `image-swapper rewrite` and the Helm
// post-renderer.
package manifest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/rules"
	"github.com/image-swapper/image-swapper/internal/workload"
)

// Options give the context that manifests do not carry themselves.
type Options struct {
	// Namespace applies to objects that do not name their own.
	Namespace string
	// NamespaceLabels are the labels of every namespace, for selectors.
	NamespaceLabels map[string]string
	// Retarget replaces swap targets, keyed by the engine's target: how
	// pinned digests and mappings files take effect.
	Retarget map[string]string
}

// Rewriter swaps images in manifest streams. It is safe for concurrent use.
type Rewriter struct {
	engine  *engine.Engine
	locator *workload.Locator
	opts    Options
}

// NewRewriter builds a Rewriter that finds images as e's configuration says
// (custom kinds included) and decides with e.
func NewRewriter(e *engine.Engine, opts Options) (*Rewriter, error) {
	loc, err := workload.NewLocator(e.Config().Workloads.Custom)
	if err != nil {
		return nil, err
	}
	return &Rewriter{engine: e, locator: loc, opts: opts}, nil
}

// Finding is the decision on one image field.
type Finding struct {
	Document int
	Image    workload.Image
	Decision engine.Decision
}

// Where names the document, object, container and image of the finding.
func (f Finding) Where() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", f.Document)
	o := f.Image.Object
	if o.Kind != "" {
		b.WriteString(" (")
		b.WriteString(o.Kind)
		if o.Name != "" {
			b.WriteByte(' ')
			if o.Namespace != "" {
				b.WriteString(o.Namespace + "/")
			}
			b.WriteString(o.Name)
		}
		b.WriteByte(')')
	}
	if f.Image.Container != "" {
		fmt.Fprintf(&b, ", container %q", f.Image.Container)
	}
	fmt.Fprintf(&b, ", %s, image %q", f.Image.Path, f.Image.Value)
	return b.String()
}

// Result is a rewritten stream and what was decided for each image.
type Result struct {
	// Output is the rewritten stream. Callers must not write it when any
	// finding is denied.
	Output   []byte
	Findings []Finding
}

// Denied returns the findings whose image is denied.
func (r Result) Denied() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Decision.Denied() {
			out = append(out, f)
		}
	}
	return out
}

// Rewrite swaps the images in a YAML stream. An error means the stream
// could not be read as YAML; denials are findings, not errors.
func (rw *Rewriter) Rewrite(stream []byte) (Result, error) {
	docs := workload.Split(stream)
	type docResult struct {
		out      []byte
		findings []Finding
		err      error
	}
	results := make([]docResult, len(docs))
	workers := min(runtime.GOMAXPROCS(0), len(docs))
	next := make(chan int, len(docs))
	for i := range docs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				r := &results[i]
				r.out, r.findings, r.err = rw.rewriteDocument(docs[i])
			}
		})
	}
	wg.Wait()

	var res Result
	size := 0
	for _, r := range results {
		if r.err != nil {
			return Result{}, r.err
		}
		size += len(r.out)
	}
	res.Output = make([]byte, 0, size)
	for _, r := range results {
		res.Output = append(res.Output, r.out...)
		res.Findings = append(res.Findings, r.findings...)
	}
	return res, nil
}

// Scan applies the vulnerability gate (engine.Scan) to the images of res
// that are not denied, all at once, as the validating webhook judges a
// Pod's images; ctx bounds the wait for scans without a verdict.
func (rw *Rewriter) Scan(ctx context.Context, res *Result, g engine.Scans) {
	if g == nil || !rw.engine.ScansEnabled() {
		return
	}
	var wg sync.WaitGroup
	for i := range res.Findings {
		f := &res.Findings[i]
		wg.Go(func() { rw.engine.Scan(ctx, &f.Decision, rw.subject(f.Image), g) })
	}
	wg.Wait()
}

func (rw *Rewriter) rewriteDocument(doc workload.Document) ([]byte, []Finding, error) {
	parsed, err := rw.locator.Parse(doc)
	if err != nil {
		return nil, nil, err
	}
	images := parsed.Images()
	if len(images) == 0 {
		return doc.Raw, nil, nil
	}
	findings := make([]Finding, len(images))
	var changes map[int]string
	for i, img := range images {
		d := rw.engine.Decide(rw.subject(img))
		if t, ok := rw.opts.Retarget[d.Target]; ok && d.Action == config.ActionSwap {
			d.Target = t
		}
		findings[i] = Finding{Document: doc.Index, Image: img, Decision: d}
		if d.Action == config.ActionSwap {
			if changes == nil {
				changes = make(map[int]string)
			}
			changes[i] = d.Target
		}
	}
	if changes == nil {
		return doc.Raw, findings, nil
	}
	out, err := parsed.Rewrite(changes)
	if err != nil {
		return nil, nil, err // workload's errors name the document
	}
	return out, findings, nil
}

// subject builds the engine's view of an image field as the webhook
// would see it at admission: selectors and conditions see the Pod (the
// pod template: kind Pod, its labels and annotations), and the workload is
// the object the template is in (rules.Context documents both).
func (rw *Rewriter) subject(img workload.Image) engine.Subject {
	ns := img.Object.Namespace
	if ns == "" {
		ns = rw.opts.Namespace
	}
	obj := rules.Object{Kind: img.Object.Kind, Name: img.Object.Name, Labels: img.Object.Labels, Annotations: img.Object.Annotations}
	if img.Field != workload.FieldCustom {
		// A pod template has no name of its own; a bare Pod has.
		obj = rules.Object{Kind: "Pod", Labels: img.PodLabels, Annotations: img.PodAnnotations}
		if img.Object.Kind == "Pod" {
			obj.Name = img.Object.Name
		}
	}
	return engine.Subject{
		Image: img.Value,
		Context: rules.Context{
			Namespace:       ns,
			NamespaceLabels: rw.opts.NamespaceLabels,
			Object:          obj,
			Workload:        rules.Workload{Kind: img.Object.Kind, Name: img.Object.Name},
		},
	}
}
