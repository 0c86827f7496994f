package workload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/image-swapper/image-swapper/internal/config"
)

// Object identifies the Kubernetes object an image belongs to.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// Labels and Annotations are the object's metadata; nil when absent.
	// They are shared by all images of the object: do not modify them.
	Labels, Annotations map[string]string
}

// Image is one image field.
type Image struct {
	// Object is the enclosing object; for List items, the item.
	Object Object
	// PodLabels are the labels of the pod template (or of the Pod itself);
	// nil when there are none or the image is not in a pod spec.
	PodLabels map[string]string
	// PodAnnotations are the annotations of the pod template (or of the Pod
	// itself), what a webhook sees on the Pod; nil when there are none or
	// the image is not in a pod spec.
	PodAnnotations map[string]string
	// Container is the container's name; "" for image volumes and custom
	// paths.
	Container string
	// Field is "containers", "initContainers", "ephemeralContainers",
	// "volumes" or "custom".
	Field string
	// Path locates the field in the document, e.g.
	// "spec.template.spec.containers[0].image",
	// "items[2].spec.containers[0].image" or
	// "spec.volumes[1].image.reference". Names that are not identifiers are
	// written in brackets: "metadata.annotations['example.com/image']".
	Path string
	// Value is the image as written (after YAML unquoting).
	Value string
}

// The Field values.
const (
	FieldContainers          = "containers"
	FieldInitContainers      = "initContainers"
	FieldEphemeralContainers = "ephemeralContainers"
	FieldVolumes             = "volumes"
	FieldCustom              = "custom"
)

// Locator finds images in documents: in the pod specs of the built-in
// workload kinds, in List items, and at the JSONPaths configured for custom
// kinds. It is immutable and safe for concurrent use.
type Locator struct {
	custom []customKind
	// needles: a document that contains none of them cannot hold an image
	// field, so Parse skips the YAML parser for it. nil parses everything.
	needles [][]byte
	// slowOnly turns the fast parser off, for tests comparing the two.
	slowOnly bool
}

type customKind struct {
	index      int
	kind       *regexp.Regexp
	apiVersion *regexp.Regexp // nil matches any apiVersion
	paths      []jsonPath
}

// NewLocator compiles the custom kinds of the configuration. Errors name the
// offending key, e.g. "workloads.custom[1].images[0]", and say why.
func NewLocator(custom []config.CustomKind) (*Locator, error) {
	// "image" is the field name of containers and image volumes; a backslash
	// may hide it in an escaped key ("imag\u0065").
	l := &Locator{needles: [][]byte{[]byte("image"), []byte(`\`)}}
	for i, ck := range custom {
		at := fmt.Sprintf("workloads.custom[%d]", i)
		c := customKind{index: i}
		if ck.Kind == "" {
			return nil, fmt.Errorf("%s.kind: must not be empty; expected a regular expression over kind, e.g. \"Prometheus|Alertmanager\"", at)
		}
		var err error
		if c.kind, err = compileAnchored(ck.Kind); err != nil {
			return nil, fmt.Errorf("%s.kind: %q: invalid regular expression: %w", at, ck.Kind, err)
		}
		if ck.APIVersion != "" {
			if c.apiVersion, err = compileAnchored(ck.APIVersion); err != nil {
				return nil, fmt.Errorf("%s.apiVersion: %q: invalid regular expression: %w", at, ck.APIVersion, err)
			}
		}
		if len(ck.Images) == 0 {
			return nil, fmt.Errorf("%s.images: empty; expected at least one JSONPath such as \"{.spec.image}\"", at)
		}
		for j, expr := range ck.Images {
			jp, err := parseJSONPath(expr)
			if err != nil {
				return nil, fmt.Errorf("%s.images[%d]: %q: invalid JSONPath: %w", at, j, expr, err)
			}
			c.paths = append(c.paths, jp)
			if name, ok := jp.lastFieldName(); !ok {
				l.needles = nil
			} else if l.needles != nil && !containsNeedle(l.needles, name) {
				l.needles = append(l.needles, []byte(name))
			}
		}
		l.custom = append(l.custom, c)
	}
	return l, nil
}

func compileAnchored(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, err // report the user's expression, not the wrapped one
	}
	return regexp.Compile("^(?:" + expr + ")$")
}

func containsNeedle(needles [][]byte, s string) bool {
	for _, n := range needles {
		if string(n) == s {
			return true
		}
	}
	return false
}

// mayHoldImages is the pre-check: every image field is reached through a
// key that appears literally in the document, unless escaped.
func (l *Locator) mayHoldImages(raw []byte) bool {
	if l.needles == nil {
		return true
	}
	for _, n := range l.needles {
		if bytes.Contains(raw, n) {
			return true
		}
	}
	return false
}

// kindMayHoldImages reports whether objects of kind may have images: the
// built-in workload kinds, lists and kinds matching a custom kind's regex
// (whatever their apiVersion).
func (l *Locator) kindMayHoldImages(kind string) bool {
	if kind == "" {
		return false
	}
	if _, ok := podTemplatePaths[kind]; ok || strings.HasSuffix(kind, "List") {
		return true
	}
	for _, c := range l.custom {
		if c.kind.MatchString(kind) {
			return true
		}
	}
	return false
}

// Parsed is a parsed document: its images and what Rewrite needs to replace
// them in place. It keeps no YAML tree, so that a stream's trees can be
// collected as soon as each document is parsed.
type Parsed struct {
	doc    Document
	images []Image
	refs   []imageRef // parallel to images
}

// imageRef is where an image's scalar is in the document.
type imageRef struct {
	// line and column (1-based, column in characters) of the scalar's node,
	// its properties (&anchor, !tag) included. Distinct scalars start at
	// distinct positions, so they also identify the scalar.
	line, column int
	style        yaml.Style
	// anchor is the scalar's anchor name; uses then counts the places
	// referring to it: the anchored node itself and every alias.
	anchor string
	uses   int
	// indent is the indentation (0-based column) of the block collection
	// holding the scalar; continuation lines of a multi-line plain scalar are
	// indented more. -1 when unknown (scalar reached through an alias).
	indent int
	// flow: the scalar is inside a flow collection ({…} or […]), where
	// ",?[]{}" end a plain scalar. true when unknown, which only makes
	// quoting more likely.
	flow bool
}

func (r imageRef) sameScalar(o imageRef) bool { return r.pos() == o.pos() }

func (r imageRef) pos() [2]int { return [2]int{r.line, r.column} }

// Document returns the document that was parsed.
func (p *Parsed) Document() Document { return p.doc }

// Images returns the image fields in document order of discovery: for each
// object, its pod spec's containers, initContainers, ephemeralContainers and
// image volumes, then its List items, then custom paths. Null and empty
// image fields are not images. The slice is shared: do not modify it.
func (p *Parsed) Images() []Image { return p.images }

// SyntaxError is a YAML error in a document.
type SyntaxError struct {
	Document int // the document's index in the stream
	// Line is the line of the stream (of the document when the document
	// does not know where it starts); 0 when the parser gave none.
	Line int
	Msg  string
}

// Error says where: "document 3: line 57: did not find expected key".
func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("document %d: line %d: %s", e.Document, e.Line, e.Msg)
	}
	return fmt.Sprintf("document %d: %s", e.Document, e.Msg)
}

var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

func syntaxError(doc Document, err error) error {
	e := &SyntaxError{Document: doc.Index, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		e.Line, e.Msg = streamLine(doc, n), m[2]
	}
	return e
}

// streamLine converts a line of the document to a line of the stream.
func streamLine(doc Document, line int) int {
	if doc.Line > 0 && line > 0 {
		return line + doc.Line - 1
	}
	return line
}

// Parse parses one document and locates its images. Documents that are not
// objects (empty, comments only, scalars, sequences) and kinds that carry no
// images yield no images and no error. A YAML syntax error is a
// *SyntaxError naming the document and line.
//
// Documents that cannot contain an image field are not parsed at all, so
// their syntax is not checked: those without the text of any image key (see
// mayHoldImages), and block-style ones whose top-level kind, read line by
// line with certainty (see sniffKind), has no images.
func (l *Locator) Parse(doc Document) (p *Parsed, err error) {
	p = &Parsed{doc: doc}
	if !l.mayHoldImages(doc.Raw) {
		return p, nil
	}
	// The sniffer only helps when the kind has no images: a Deployment,
	// which must be parsed anyway, is not sniffed.
	if !l.kindMayHoldImages(peekKind(doc.Raw)) {
		if kind, ok := sniffKind(doc.Raw); ok && !l.kindMayHoldImages(kind) {
			return p, nil
		}
	}
	defer func() {
		// The parser is third-party code fed with arbitrary input; a panic
		// there must not take the process down.
		if r := recover(); r != nil {
			p, err = nil, &SyntaxError{Document: doc.Index, Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	if !l.slowOnly {
		if fast, ok := fastParse(doc.Raw); ok {
			return l.locate(p, fast)
		}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(doc.Raw))
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		return nil, syntaxError(doc, err)
	}
	// Images in a second document would go unseen: refuse rather than miss
	// them. Split never produces such documents.
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		if err != nil {
			return nil, syntaxError(doc, err)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, &SyntaxError{Document: doc.Index, Line: streamLine(doc, next.Line), Msg: "a second YAML document starts here; split the stream into documents first"}
		}
	}
	return l.locate(p, &root)
}

// locate finds the images in the tree of p's document.
func (l *Locator) locate(p *Parsed, root *yaml.Node) (*Parsed, error) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return p, nil
	}
	w := walker{l: l, doc: p.doc, budget: budget{left: l.stepBudget(len(p.doc.Raw))}}
	if err := w.object(root.Content[0], ""); err != nil {
		return nil, err
	}
	if w.anchored != nil {
		countUses(root, w.anchored, w.refs)
	}
	p.images, p.refs = w.images, w.refs
	return p, nil
}

// stepBudget bounds the work on one document. Without aliases every object
// visited and every JSONPath step taken is a distinct node, so the work is
// linear in the document's size; aliases let a small document describe an
// exponentially large tree (nested Lists of aliased items), which is refused.
func (l *Locator) stepBudget(size int) int {
	paths := 1
	for _, c := range l.custom {
		paths += len(c.paths)
	}
	return 1024 + 2*size*paths
}

type budget struct{ left int }

var errBudget = errors.New("too many nodes to visit through aliases; expand the aliases or split the document")

func (b *budget) spend() error {
	b.left--
	if b.left < 0 {
		return errBudget
	}
	return nil
}

// podTemplatePaths: for each built-in kind, the keys leading from the object
// to its pod template (a mapping with metadata and spec). Kinds are matched
// without apiVersion, so extensions/v1beta1 or batch/v1beta1 work too.
var podTemplatePaths = map[string][]string{
	"Pod":                   nil,
	"PodTemplate":           {"template"},
	"ReplicationController": {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

type walker struct {
	l      *Locator
	doc    Document
	images []Image
	refs   []imageRef
	seen   map[string]bool // paths found, once custom kinds may duplicate them
	budget budget
	// anchored maps anchored image scalars to their refs' indexes.
	anchored map[*yaml.Node][]int
}

// countUses sets the uses of anchored image scalars: the anchor itself plus
// every alias to it anywhere in the document.
func countUses(root *yaml.Node, anchored map[*yaml.Node][]int, refs []imageRef) {
	uses := make(map[*yaml.Node]int, len(anchored))
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			if _, ok := anchored[n.Alias]; ok {
				uses[n.Alias]++
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	for n, idx := range anchored {
		for _, i := range idx {
			refs[i].uses = 1 + uses[n]
		}
	}
}

// object collects the images of the object n whose path is prefix.
func (w *walker) object(n *yaml.Node, prefix string) error {
	if err := w.budget.spend(); err != nil {
		return fmt.Errorf("document %d: %s: %w", w.doc.Index, orRoot(prefix), err)
	}
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	obj := objectOf(n)
	if obj.Kind == "" {
		return nil
	}
	if keys, ok := podTemplatePaths[obj.Kind]; ok {
		w.podTemplate(n, keys, prefix, obj)
	}
	if obj.Kind == "List" || strings.HasSuffix(obj.Kind, "List") {
		if _, _, items := lookup(n, "items"); items != nil {
			if items = resolve(items); items.Kind == yaml.SequenceNode {
				for i, it := range items.Content {
					if err := w.object(it, joinIndex(joinField(prefix, "items"), i)); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, ck := range w.l.custom {
		if !ck.kind.MatchString(obj.Kind) || (ck.apiVersion != nil && !ck.apiVersion.MatchString(obj.APIVersion)) {
			continue
		}
		if err := w.custom(n, prefix, obj, ck); err != nil {
			return err
		}
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

func (w *walker) podTemplate(n *yaml.Node, keys []string, prefix string, obj Object) {
	tpl, path := n, prefix
	for _, k := range keys {
		if _, _, tpl = lookup(tpl, k); tpl == nil {
			return
		}
		path = joinField(path, k)
	}
	podLabels, podAnnotations := obj.Labels, obj.Annotations
	if len(keys) > 0 {
		_, _, md := lookup(tpl, "metadata")
		_, _, lb := lookup(md, "labels")
		podLabels = stringMap(lb)
		_, _, an := lookup(md, "annotations")
		podAnnotations = stringMap(an)
	}
	_, _, spec := lookup(tpl, "spec")
	if spec == nil {
		return
	}
	path = joinField(path, "spec")
	for _, field := range [...]string{FieldContainers, FieldInitContainers, FieldEphemeralContainers} {
		_, _, list := lookup(spec, field)
		if list = resolve(list); list == nil || list.Kind != yaml.SequenceNode {
			continue
		}
		listPath := joinField(path, field)
		for i, c := range list.Content {
			m, k, v := lookup(c, "image")
			if v == nil {
				continue
			}
			name := ""
			if _, _, nn := lookup(c, "name"); nn != nil {
				if nn = resolve(nn); nn.Kind == yaml.ScalarNode {
					name = nn.Value
				}
			}
			w.add(Image{
				Object: obj, PodLabels: podLabels, PodAnnotations: podAnnotations, Container: name, Field: field,
				Path: joinIndex(listPath, i) + ".image",
			}, v, m, k)
		}
	}
	_, _, vols := lookup(spec, "volumes")
	if vols = resolve(vols); vols != nil && vols.Kind == yaml.SequenceNode {
		volPath := joinField(path, "volumes")
		for i, vol := range vols.Content {
			_, _, img := lookup(vol, "image")
			m, k, v := lookup(img, "reference")
			if v == nil {
				continue
			}
			w.add(Image{
				Object: obj, PodLabels: podLabels, PodAnnotations: podAnnotations, Field: FieldVolumes,
				Path: joinIndex(volPath, i) + ".image.reference",
			}, v, m, k)
		}
	}
}

// add records the image whose scalar is v (held by parent under key, or in
// a sequence when key is nil). Non-scalars, nulls and empty strings are not
// images: Kubernetes rejects the first and treats the others as unset.
func (w *walker) add(img Image, v, parent, key *yaml.Node) {
	aliased := v.Kind == yaml.AliasNode
	v = resolve(v)
	if v == nil || v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
		return
	}
	if w.seen != nil {
		if w.seen[img.Path] {
			return
		}
		w.seen[img.Path] = true
	}
	img.Value = v.Value
	ref := imageRef{line: v.Line, column: v.Column, style: v.Style, anchor: v.Anchor, indent: -1, flow: true}
	if v.Anchor != "" {
		if w.anchored == nil {
			w.anchored = make(map[*yaml.Node][]int)
		}
		w.anchored[v] = append(w.anchored[v], len(w.refs))
	}
	if !aliased && parent != nil {
		ref.flow = parent.Style&yaml.FlowStyle != 0
		if key != nil {
			ref.indent = key.Column - 1
		} else {
			ref.indent = parent.Column - 1
		}
	}
	w.images = append(w.images, img)
	w.refs = append(w.refs, ref)
}

func (w *walker) custom(n *yaml.Node, prefix string, obj Object, ck customKind) error {
	if w.seen == nil {
		w.seen = make(map[string]bool, len(w.images)+4)
		for _, img := range w.images {
			w.seen[img.Path] = true
		}
	}
	for j, jp := range ck.paths {
		err := jp.eval(n, prefix, &w.budget, func(m match) error {
			v := resolve(m.node)
			if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
				what := "a mapping"
				if v.Kind == yaml.SequenceNode {
					what = "a sequence"
				}
				return fmt.Errorf("document %d: %s %q: workloads.custom[%d].images[%d] %q selects %s at %s; expected an image string",
					w.doc.Index, obj.Kind, obj.Name, ck.index, j, jp.expr, what, m.path)
			}
			w.add(Image{Object: obj, Field: FieldCustom, Path: m.path}, m.node, m.parent, m.key)
			return nil
		})
		if errors.Is(err, errBudget) {
			return fmt.Errorf("document %d: %s %q: workloads.custom[%d].images[%d] %q: %w", w.doc.Index, obj.Kind, obj.Name, ck.index, j, jp.expr, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// objectOf reads the identifying fields of an object.
func objectOf(n *yaml.Node) Object {
	var o Object
	o.APIVersion = scalarAt(n, "apiVersion")
	o.Kind = scalarAt(n, "kind")
	if o.Kind == "" {
		return o
	}
	_, _, md := lookup(n, "metadata")
	o.Name = scalarAt(md, "name")
	o.Namespace = scalarAt(md, "namespace")
	_, _, lb := lookup(md, "labels")
	o.Labels = stringMap(lb)
	_, _, an := lookup(md, "annotations")
	o.Annotations = stringMap(an)
	return o
}

func scalarAt(n *yaml.Node, key string) string {
	_, _, v := lookup(n, key)
	if v = resolve(v); v != nil && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return v.Value
	}
	return ""
}

// stringMap reads a mapping of scalars, merge keys included (explicit keys
// win, then the first merged mapping); nil when there is none.
func stringMap(n *yaml.Node) map[string]string {
	left := maxMergeVisits
	m := stringMapInto(n, nil, &left)
	if len(m) == 0 {
		return nil
	}
	return m
}

func stringMapInto(n *yaml.Node, m map[string]string, left *int) map[string]string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) == 0 || *left <= 0 {
		return m
	}
	*left--
	if m == nil {
		m = make(map[string]string, len(n.Content)/2)
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			if v.Kind == yaml.SequenceNode {
				merged = append(merged, v.Content...)
			} else {
				merged = append(merged, v)
			}
		}
	}
	// Later sources first, so that earlier ones and then explicit keys
	// overwrite them.
	for s := len(merged) - 1; s >= 0; s-- {
		m = stringMapInto(merged[s], m, left)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag != "!!merge" && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			m[k.Value] = v.Value
		}
	}
	return m
}

// maxMergeVisits bounds the mappings one lookup visits through merge keys,
// which may otherwise nest exponentially ("<<: [*a, *a]" on every level).
const maxMergeVisits = 256

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// lookup finds key in the mapping n, following aliases and merge keys
// ("<<"). It returns the mapping holding the key, the key node and the
// value, or nils. As in Kubernetes' decoders, the last duplicate key wins;
// an explicit key wins over merged ones, and among merged mappings the
// first listed wins.
func lookup(n *yaml.Node, key string) (parent, k, v *yaml.Node) {
	left := maxMergeVisits
	return lookupIn(n, key, &left)
}

func lookupIn(n *yaml.Node, key string, left *int) (parent, k, v *yaml.Node) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || *left <= 0 {
		return nil, nil, nil
	}
	*left--
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn := resolve(n.Content[i])
		if kn.Kind != yaml.ScalarNode {
			continue
		}
		if kn.Tag == "!!merge" {
			merge = n.Content[i+1]
		} else if kn.Value == key {
			parent, k, v = n, kn, n.Content[i+1]
		}
	}
	if v != nil || merge == nil {
		return parent, k, v
	}
	if merge = resolve(merge); merge.Kind == yaml.SequenceNode {
		for _, m := range merge.Content {
			if parent, k, v = lookupIn(m, key, left); v != nil {
				return parent, k, v
			}
		}
		return nil, nil, nil
	}
	return lookupIn(merge, key, left)
}
