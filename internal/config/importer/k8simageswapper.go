package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// K8sImageSwapper translates a k8s-image-swapper
// (github.com/estahn/k8s-image-swapper) config file into an image-swapper
// configuration. The values of the project's Helm chart are read too: their
// config section is the config file.
//
// The semantics are those of k8s-image-swapper v1.5 (pkg/config/config.go,
// pkg/webhook/image_swapper.go): every image of a Pod is swapped to
// TARGET/REGISTRY/REPOSITORY, as image-swapper's sourceRegistries: ["*"]
// does, unless it already comes from the target or a source.filters
// expression is true for it. Keys are matched case-insensitively, as viper
// does.
func K8sImageSwapper(data []byte) (*config.Config, []Finding, error) {
	fs := &findings{source: "config"}
	root, err := parseYAMLMapping(data)
	if err != nil {
		return nil, nil, err
	}
	t := &kisTranslator{fs: fs}
	if err := t.translate(root); err != nil {
		return nil, nil, err
	}
	if err := checkCompiles(&t.cfg); err != nil {
		return nil, nil, fmt.Errorf("importer: the translated k8s-image-swapper config does not compile, which is a bug in the importer: %w", err)
	}
	return &t.cfg, fs.sorted(), nil
}

// parseYAMLMapping reads the first YAML document, which must be a mapping.
func parseYAMLMapping(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("importer: the k8s-image-swapper config is empty; expected a YAML mapping with keys such as target and source")
		}
		return nil, fmt.Errorf("importer: the k8s-image-swapper config is not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 || resolve(doc.Content[0]).Kind != yaml.MappingNode {
		return nil, errors.New("importer: the k8s-image-swapper config is not a YAML mapping; expected keys such as target and source")
	}
	return resolve(doc.Content[0]), nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// ymap is a YAML mapping whose keys are looked up case-insensitively.
type ymap struct {
	path  string
	keys  []*yaml.Node
	vals  []*yaml.Node
	taken []bool
}

// newYmap reads a mapping node; duplicate keys (in any case) are an error,
// as viper fails to read such a file.
func newYmap(n *yaml.Node, path string) (*ymap, error) {
	m := &ymap{path: path}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("importer: line %d: %s has a key that is not a string", k.Line, describePath(path))
		}
		low := strings.ToLower(k.Value)
		if first, dup := seen[low]; dup {
			return nil, fmt.Errorf("importer: line %d: %s is set twice (first on line %d); k8s-image-swapper cannot read such a file", k.Line, join(path, k.Value), first)
		}
		seen[low] = k.Line
		m.keys = append(m.keys, k)
		m.vals = append(m.vals, v)
		m.taken = append(m.taken, false)
	}
	return m, nil
}

func describePath(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// get returns the value of key and the line of the key, marking it read.
func (m *ymap) get(key string) (*yaml.Node, int) {
	for i, k := range m.keys {
		if strings.EqualFold(k.Value, key) {
			m.taken[i] = true
			return m.vals[i], k.Line
		}
	}
	return nil, 0
}

// rest calls fn for the keys not read, in file order.
func (m *ymap) rest(fn func(key string, line int, v *yaml.Node)) {
	for i, k := range m.keys {
		if !m.taken[i] {
			m.taken[i] = true
			fn(k.Value, k.Line, m.vals[i])
		}
	}
}

// kisTranslator holds the state of one translation.
type kisTranslator struct {
	fs  *findings
	cfg config.Config
}

// The top-level keys of k8s-image-swapper's config (pkg/config/config.go
// and the skipRegistries of estahn/k8s-image-swapper#865).
var kisTopKeys = []string{"dryRun", "logLevel", "logFormat", "listenAddress", "imageSwapPolicy", "imageCopyPolicy",
	"imageCopyDeadline", "skipRegistries", "imageCopySkipRegistries", "cacheTtlMinutes", "cacheJitterMaxMinutes",
	"source", "target", "tlsCertFile", "tlsKeyFile"}

func (t *kisTranslator) translate(rootNode *yaml.Node) error {
	root, err := newYmap(rootNode, "")
	if err != nil {
		return err
	}
	if inner, line := root.get("config"); inner != nil && !hasAnyKey(root, kisTopKeys) {
		if err := t.helmValues(root, inner, line); err != nil {
			return err
		}
		root, err = newYmap(inner, "config")
		if err != nil {
			return err
		}
	}

	t.cfg.SourceRegistries = []string{"*"}
	if err := t.target(root); err != nil {
		return err
	}
	t.policies(root)
	t.source(root)

	if v, line := root.get("dryRun"); v != nil {
		b, ok := yamlBool(v)
		switch {
		case !ok:
			t.fs.add(line, join(root.path, "dryRun"), "not true or false; not imported")
		case b:
			t.cfg.DryRun = true
			t.fs.add(line, join(root.path, "dryRun"), "imported as dryRun: true: image-swapper decides, records and warns, but patches no Pod and denies nothing; k8s-image-swapper ignored this key and swapped all the same (estahn/k8s-image-swapper#129), and its Helm chart sets it by default, so remove dryRun to swap as it did")
		}
	}
	for _, key := range []string{"logLevel", "logFormat", "listenAddress", "tlsCertFile", "tlsKeyFile"} {
		if v, line := root.get(key); v != nil {
			t.fs.add(line, join(root.path, key), "a server setting, not part of image-swapper's configuration file; give it to image-swapper serve instead; not imported")
		}
	}
	for _, key := range []string{"cacheTtlMinutes", "cacheJitterMaxMinutes"} {
		if v, line := root.get(key); v != nil {
			t.fs.add(line, join(root.path, key), "image-swapper caches whether the mirror has an image with TTLs of its own, which this file does not set; not imported")
		}
	}
	for _, key := range []string{"skipRegistries", "imageCopySkipRegistries"} {
		if v, line := root.get(key); v != nil {
			t.fs.add(line, join(root.path, key), "image-swapper cannot skip the copy for some source registries; it copies every image it swaps that the mirror lacks; not imported")
		}
	}
	root.rest(func(key string, line int, _ *yaml.Node) {
		t.fs.add(line, join(root.path, key), "k8s-image-swapper does not know this key and ignores it; not imported")
	})

	if !t.excludesKubeSystem() {
		t.fs.add(0, "", "k8s-image-swapper also swaps in kube-system unless a filter excludes it; image-swapper leaves kube-system alone by default (add namespaces.include: [kube-system] to swap there too)")
	}
	t.fs.add(0, "", "k8s-image-swapper could not swap images of registries with a port (the port made an invalid target name); image-swapper swaps them too, writing the port as _PORT in the target path")
	return nil
}

// hasAnyKey reports whether m has one of keys (case-insensitively),
// without marking it read.
func hasAnyKey(m *ymap, keys []string) bool {
	for _, k := range m.keys {
		for _, want := range keys {
			if strings.EqualFold(k.Value, want) {
				return true
			}
		}
	}
	return false
}

// helmValues handles the values of the k8s-image-swapper Helm chart: the
// config section is the config file; the webhook's selectors limit which
// Pods are swapped; the rest configures the deployment.
func (t *kisTranslator) helmValues(root *ymap, inner *yaml.Node, line int) error {
	if inner.Kind != yaml.MappingNode {
		return fmt.Errorf("importer: line %d: config is not a mapping; expected the k8s-image-swapper config", line)
	}
	if wh, _ := root.get("webhook"); wh != nil && wh.Kind == yaml.MappingNode {
		w, err := newYmap(wh, "webhook")
		if err != nil {
			return err
		}
		for _, key := range []string{"namespaceSelector", "objectSelector"} {
			v, l := w.get(key)
			if v == nil {
				continue
			}
			sel, err := labelSelector(v)
			switch {
			case err != nil:
				t.fs.add(l, "webhook."+key, fmt.Sprintf("is not a label selector (%v); not imported", err))
			case sel == nil:
			case key == "namespaceSelector":
				t.cfg.Mirroring.NamespaceSelector = sel
			default:
				t.cfg.Mirroring.ObjectSelector = sel
			}
		}
	}
	var other []string
	root.rest(func(key string, _ int, _ *yaml.Node) { other = append(other, key) })
	if len(other) > 0 {
		t.fs.add(line, "config", fmt.Sprintf("read as the config of the k8s-image-swapper Helm chart's values; the other values (%s) configure the deployment and are not imported, except webhook.namespaceSelector and webhook.objectSelector, which became mirroring's selectors", strings.Join(other, ", ")))
	}
	return nil
}

// labelSelector decodes a Kubernetes label selector; nil for an empty one,
// which selects everything.
func labelSelector(n *yaml.Node) (*metav1.LabelSelector, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var sel metav1.LabelSelector
	if err := dec.Decode(&sel); err != nil {
		return nil, err
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return nil, nil
	}
	if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
		return nil, err
	}
	return &sel, nil
}

// --- target ------------------------------------------------------------

// target sets targetRegistry from target (pkg/config/config.go, EcrDomain
// and GarDomain). A config without a usable target does not start
// k8s-image-swapper, so it is an error here too.
func (t *kisTranslator) target(root *ymap) error {
	tn, tline := root.get("target")
	if tn == nil {
		return errors.New("importer: the k8s-image-swapper config has no target; k8s-image-swapper needs target.aws (accountId, region) or target.gcp (location, projectId, repositoryId)")
	}
	if tn.Kind != yaml.MappingNode {
		return fmt.Errorf("importer: line %d: target is not a mapping", tline)
	}
	tm, err := newYmap(tn, "target")
	if err != nil {
		return err
	}
	typ := "aws" // SetViperDefaults: Target.Type defaults to aws.
	if v, line := tm.get("type"); v != nil {
		typ = strings.ToLower(scalar(v))
		if typ != "aws" && typ != "gcp" {
			return fmt.Errorf("importer: line %d: target.type %q: k8s-image-swapper mirrors only to aws (ECR) or gcp (Artifact Registry)", line, scalar(v))
		}
	}
	aws, awsLine := tm.get("aws")
	gcp, gcpLine := tm.get("gcp")
	var host string
	var provider func(host string)
	switch typ {
	case "aws":
		if gcp != nil {
			t.fs.add(gcpLine, "target.gcp", "not used, because target.type is aws; not imported")
		}
		host, provider, err = t.awsTarget(aws, awsLine)
	default:
		if aws != nil {
			t.fs.add(awsLine, "target.aws", "not used, because target.type is gcp; not imported")
		}
		host, provider, err = t.gcpTarget(gcp, gcpLine)
	}
	if err != nil {
		return err
	}
	tm.rest(func(key string, line int, _ *yaml.Node) {
		t.fs.add(line, "target."+key, "k8s-image-swapper does not know this key and ignores it; not imported")
	})
	t.cfg.TargetRegistry = host
	c := config.Config{TargetRegistry: host}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("importer: line %d: the target %q is not a valid registry: %v", tline, host, oneLine(err))
	}
	// The provider is translated once the host is known to be valid, as
	// its settings are validated against the host.
	provider(host)
	return nil
}

// scalar returns a scalar's text as written (an account ID keeps its
// leading zeros), or "" for anything else.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}

func yamlBool(n *yaml.Node) (bool, bool) {
	b, err := strconv.ParseBool(scalar(n))
	return b, err == nil
}

// --- swap and copy policies ---------------------------------------------

// defaultCopyDeadline is k8s-image-swapper's imageCopyDeadline default
// (pkg/config/config.go, DefaultImageCopyDeadline).
const defaultCopyDeadline = 8 * time.Second

// policies translates imageSwapPolicy, imageCopyPolicy and
// imageCopyDeadline (pkg/webhook/image_swapper.go, Mutate):
//
//	swap exists + copy delayed     queue the copy, swap if the target has it   swap: exists
//	swap exists + copy immediate   copy, wait up to the deadline, then check   swap: wait
//	swap exists + copy force       the same, outside the copy queue            swap: wait
//	swap always + copy delayed     queue the copy, swap                        swap: always
//	swap always + immediate/force  copy and wait, then swap regardless         swap: always
//	copy none                      never copy                                  (no equivalent)
func (t *kisTranslator) policies(root *ymap) {
	swap, copyPolicy := "exists", "delayed"
	swapNode, swapLine := root.get("imageSwapPolicy")
	if v := scalar(swapNode); v != "" {
		if v == "exists" || v == "always" {
			swap = v
		} else {
			t.fs.add(swapLine, join(root.path, "imageSwapPolicy"), fmt.Sprintf("%q is not always or exists; imported as exists, image-swapper's default", v))
		}
	}
	copyNode, copyLine := root.get("imageCopyPolicy")
	if v := scalar(copyNode); v != "" {
		if slices.Contains([]string{"delayed", "immediate", "force", "none"}, v) {
			copyPolicy = v
		} else {
			t.fs.add(copyLine, join(root.path, "imageCopyPolicy"), fmt.Sprintf("%q is not delayed, immediate, force or none; imported as delayed", v))
		}
	}
	deadlineNode, deadlineLine := root.get("imageCopyDeadline")
	deadline := defaultCopyDeadline
	if deadlineNode != nil {
		d, reason := copyDeadline(deadlineNode)
		if reason != "" {
			t.fs.add(deadlineLine, join(root.path, "imageCopyDeadline"), reason)
		} else if d > 0 {
			deadline = d
		}
	}
	copyPath := join(root.path, "imageCopyPolicy")
	switch {
	case swap == "always":
		t.cfg.Mirroring.Swap = config.SwapAlways
		if copyPolicy == "immediate" || copyPolicy == "force" {
			t.fs.add(copyLine, copyPath, fmt.Sprintf("with imageSwapPolicy: always, k8s-image-swapper waited up to the deadline for the copy before swapping; image-swapper's swap: always swaps at once and copies in the background (%s is not imported)", copyPolicy))
		}
	case copyPolicy == "immediate" || copyPolicy == "force":
		t.cfg.Mirroring.Swap = config.SwapWait
		budget := &metav1.Duration{Duration: deadline}
		c := config.Config{Mirroring: config.Mirroring{Swap: config.SwapWait, WaitBudget: budget}}
		if err := c.Validate(); err != nil {
			t.fs.add(deadlineLine, join(root.path, "imageCopyDeadline"), fmt.Sprintf("%s cannot be image-swapper's wait budget (%v); the default budget applies", deadline, oneLine(err)))
		} else {
			t.cfg.Mirroring.WaitBudget = budget
		}
		if copyPolicy == "force" {
			t.fs.add(copyLine, copyPath, "force copied at once, outside k8s-image-swapper's copy queue; image-swapper's swap: wait queues the copy (deduplicated) and waits for it")
		}
	default:
		t.cfg.Mirroring.Swap = config.SwapExists
	}
	if copyPolicy == "none" {
		t.fs.add(copyLine, copyPath, "image-swapper cannot turn copying off: it copies every image it swaps that the mirror lacks; with a pull-through cache as the target, copies find the image present and do nothing")
	}
}

// copyDeadline reads imageCopyDeadline as viper does: a string is a Go
// duration, an integer is nanoseconds.
func copyDeadline(n *yaml.Node) (time.Duration, string) {
	v := scalar(n)
	switch n.ShortTag() {
	case "!!int":
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Sprintf("%q is not a duration; not imported", v)
		}
		return 0, fmt.Sprintf("k8s-image-swapper reads the integer %d as %s, so no copy could finish in time; not imported (write a duration such as 8s)", ns, time.Duration(ns))
	case "!!str":
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Sprintf("%q is not a duration such as 8s; not imported", v)
		}
		return d, ""
	}
	return 0, "not a duration such as 8s; not imported"
}

// --- source ------------------------------------------------------------

// source translates source.registries (credentials only) and
// source.filters.
func (t *kisTranslator) source(root *ymap) {
	sn, sline := root.get("source")
	if sn == nil || sn.ShortTag() == "!!null" {
		return
	}
	spath := join(root.path, "source")
	if sn.Kind != yaml.MappingNode {
		t.fs.add(sline, spath, "not a mapping; not imported")
		return
	}
	s, err := newYmap(sn, spath)
	if err != nil {
		t.fs.add(sline, spath, fmt.Sprintf("%v; not imported", err))
		return
	}
	if regs, _ := s.get("registries"); regs != nil && regs.Kind == yaml.SequenceNode {
		for i, r := range regs.Content {
			t.fs.add(resolve(r).Line, fmt.Sprintf("%s.registries[%d]", spath, i), fmt.Sprintf("k8s-image-swapper used this entry (%s) only for the credentials to pull from it; image-swapper takes registry credentials from its environment, not from this file; not imported", describeRegistry(resolve(r))))
		}
	}
	if filters, fline := s.get("filters"); filters != nil && filters.ShortTag() != "!!null" {
		t.filters(filters, fline, spath+".filters")
	}
	s.rest(func(key string, line int, _ *yaml.Node) {
		t.fs.add(line, spath+"."+key, "k8s-image-swapper does not know this key and ignores it; not imported")
	})
}

// describeRegistry names a source registry entry for a finding, never with
// its credentials.
func describeRegistry(n *yaml.Node) string {
	m, err := newYmap(n, "")
	if err != nil || n.Kind != yaml.MappingNode {
		return "an entry"
	}
	typ, _ := m.get("type")
	kind := strings.ToLower(scalar(typ))
	switch kind {
	case "aws":
		if a, _ := m.get("aws"); a != nil && a.Kind == yaml.MappingNode {
			am, err := newYmap(a, "")
			if err == nil {
				acc, _ := am.get("accountId")
				reg, _ := am.get("region")
				return fmt.Sprintf("ECR %s.dkr.ecr.%s.amazonaws.com", scalar(acc), scalar(reg))
			}
		}
	case "gcp":
		if g, _ := m.get("gcp"); g != nil && g.Kind == yaml.MappingNode {
			gm, err := newYmap(g, "")
			if err == nil {
				loc, _ := gm.get("location")
				p, _ := gm.get("projectId")
				r, _ := gm.get("repositoryId")
				return fmt.Sprintf("Artifact Registry %s-docker.pkg.dev/%s/%s", scalar(loc), scalar(p), scalar(r))
			}
		}
	case "generic":
		if g, _ := m.get("generic"); g != nil && g.Kind == yaml.MappingNode {
			gm, err := newYmap(g, "")
			if err == nil {
				if o, _ := gm.get("genericOptions"); o != nil && o.Kind == yaml.MappingNode {
					if om, err := newYmap(o, ""); err == nil {
						d, _ := om.get("domain")
						return "registry " + scalar(d)
					}
				}
			}
		}
	}
	if kind == "" {
		return "an entry without a type"
	}
	return "a registry of type " + kind
}

// filters translates source.filters; a filter that is true leaves the
// container alone.
func (t *kisTranslator) filters(n *yaml.Node, line int, path string) {
	if n.Kind != yaml.SequenceNode {
		t.fs.add(line, path, "not a list; not imported")
		return
	}
	var plan filterPlan
	for i, f := range n.Content {
		f = resolve(f)
		fpath := fmt.Sprintf("%s[%d]", path, i)
		var expr string
		if f.Kind == yaml.MappingNode {
			if m, err := newYmap(f, fpath); err == nil {
				e, _ := m.get("jmespath")
				expr = scalar(e)
				m.rest(func(key string, l int, _ *yaml.Node) {
					t.fs.add(l, fpath+"."+key, "k8s-image-swapper does not know this key and ignores it; not imported")
				})
			}
		}
		if expr == "" {
			t.fs.add(f.Line, fpath, "a filter needs a jmespath expression; not imported")
			continue
		}
		input := fpath + ".jmespath: " + expr
		notes, err := translateFilter(expr, &plan)
		if err != nil {
			t.fs.add(f.Line, input, fmt.Sprintf("JMESPath does not translate in general and this filter is %v; not imported: the containers it excluded are swapped (exclude them with namespaces.exclude, mirroring.namespaceSelector, mirroring.objectSelector or mirroring.condition)", err))
			continue
		}
		if strings.Contains(expr, "'-dev'") && strings.Contains(expr, "ends_with(obj.metadata.namespace") {
			notes = append(notes, "k8s-image-swapper's documentation calls this filter \"only process if namespace ends with -dev\", but a filter that is true skips the Pod, so it left those namespaces alone, as the translation does")
		}
		if len(notes) > 0 {
			t.fs.add(f.Line, input, joinReasons(notes))
		}
	}
	t.applyPlan(plan, line, path)
}

// applyPlan writes what the filters translated to.
func (t *kisTranslator) applyPlan(plan filterPlan, line int, path string) {
	for _, ns := range plan.exclude {
		if !slices.Contains(t.cfg.Namespaces.Exclude, ns) {
			t.cfg.Namespaces.Exclude = append(t.cfg.Namespaces.Exclude, ns)
		}
	}
	for _, in := range plan.onlyIn {
		if len(in) == 0 {
			off := false
			t.cfg.Mirroring.Enabled = &off
			t.fs.add(line, path, "a filter leaves alone every namespace but one that cannot exist, so k8s-image-swapper swapped nothing; imported as mirroring.enabled: false")
			continue
		}
		if t.cfg.Mirroring.NamespaceSelector == nil {
			t.cfg.Mirroring.NamespaceSelector = &metav1.LabelSelector{}
		}
		sel := t.cfg.Mirroring.NamespaceSelector
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: in,
		})
	}
	if len(plan.skip) > 0 {
		var parts []string
		if t.cfg.Mirroring.Condition != "" {
			parts = append(parts, t.cfg.Mirroring.Condition)
		}
		for _, s := range plan.skip {
			parts = append(parts, "!"+wrap(s))
		}
		cond := strings.Join(parts, " && ")
		if _, err := rules.CompileCondition(cond); err != nil {
			t.fs.add(line, path, fmt.Sprintf("the filters translate to a CEL condition that does not compile (%v); not imported", err))
			return
		}
		t.cfg.Mirroring.Condition = cond
	}
}

// excludesKubeSystem reports whether the translation leaves kube-system
// alone through a filter.
func (t *kisTranslator) excludesKubeSystem() bool {
	for _, ns := range t.cfg.Namespaces.Exclude {
		if p, err := glob.Compile(ns); err == nil && p.Match("kube-system") {
			return true
		}
	}
	if sel := t.cfg.Mirroring.NamespaceSelector; sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil && !s.Matches(kubeSystemLabels{}) {
			return true
		}
	}
	return false
}

// kubeSystemLabels are the labels every kube-system namespace has.
type kubeSystemLabels struct{}

func (kubeSystemLabels) Has(key string) bool { return key == "kubernetes.io/metadata.name" }
func (kubeSystemLabels) Get(key string) string {
	if key == "kubernetes.io/metadata.name" {
		return "kube-system"
	}
	return ""
}
func (k kubeSystemLabels) Lookup(key string) (string, bool) { return k.Get(key), k.Has(key) }
