package importer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	yaml "go.yaml.in/yaml/v3"

	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// filterCorpus is every JMESPath filter the importer's tests know: those
// of the k8s-image-swapper testdata (any "jmespath" key, at any depth)
// and those the unit tests and fuzz seeds name.
func filterCorpus(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/k8s-image-swapper/*.yml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no k8s-image-swapper testdata (%v)", err)
	}
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if strings.EqualFold(n.Content[i].Value, "jmespath") && n.Content[i+1].Kind == yaml.ScalarNode {
					out = append(out, n.Content[i+1].Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		walk(&doc)
	}
	out = append(out, unitFilters...)
	slices.Sort(out)
	return slices.Compact(out)
}

// unitFilters are the filters the unit tests translate or refuse, and a
// few more shapes users write.
var unitFilters = []string{
	"obj.metadata.namespace == 'kube-system'",
	"'kube-system' == obj.metadata.namespace",
	"obj.metadata.namespace == `\"kube-system\"`",
	"obj.metadata.namespace == 'a' || obj.metadata.namespace == 'b'",
	"contains(['a', 'b'], obj.metadata.namespace) == `true`",
	"contains(['a', 'b'], obj.metadata.namespace) == `false`",
	"ends_with(obj.metadata.namespace,'-dev')",
	"starts_with(obj.metadata.namespace, 'tmp-')",
	"contains(obj.metadata.namespace, 'sandbox')",
	"obj.metadata.namespace != 'playground'",
	"!contains(['a', 'b'], obj.metadata.namespace)",
	"!(obj.metadata.namespace == 'a')",
	"contains(container.image, '.dkr.ecr.') && contains(container.image, '.amazonaws.com')",
	"starts_with(container.image, 'ghcr.io/org/') || obj.kind == 'Job'",
	"obj.metadata.labels.team == 'a'",
	`obj.metadata.labels."app.kubernetes.io/name" != 'x'`,
	"obj.metadata.annotations.\"example.com/skip\" == 'true'",
	"obj.metadata.name == 'web' && obj.metadata.namespace == 'default'",
	"`true`",
	"'it\\'s' == obj.metadata.name",
	"container.name == 'istio-proxy'",
	"length(obj.spec.containers) > `3`",
	"obj.spec.containers[0].image == 'x'",
	"obj.metadata.namespace",
	"starts_with(obj.metadata.namespace",
	"obj.metadata.namespace == 'a' | foo",
	"'unterminated",
	"!(obj.kind == 'Pod')",
	strings.Repeat("(", 500) + "true" + strings.Repeat(")", 500),
	strings.Repeat("!", 500) + "true",
	"A\u0080", // go-jmespath v1.1.1's lexer panics on it
}

// translation is what one filter becomes, for comparing two parsers.
type translation struct {
	plan  filterPlan
	notes []string
	ok    bool
}

func translateWith(parse func(string) (*jpNode, error), expr string) translation {
	n, err := parse(expr)
	if err != nil {
		if !errors.Is(err, errJMESPath) {
			panic("a parse error that is not errJMESPath: " + err.Error())
		}
		return translation{}
	}
	var plan filterPlan
	notes, err := translateTree(n, &plan)
	return translation{plan: plan, notes: notes, ok: err == nil}
}

// The parser was hand-written before the importer used go-jmespath; on the
// whole corpus both read the same tree, and so give the same translation.
func TestLibraryAndLegacyParserAgreeOnTheCorpus(t *testing.T) {
	corpus := filterCorpus(t)
	if len(corpus) < 30 {
		t.Fatalf("the corpus has %d filters; expected the testdata's and the unit tests'", len(corpus))
	}
	translated := 0
	for _, expr := range corpus {
		legacyTree, legacyErr := legacyParseJMESPath(expr)
		libTree, libErr := parseJMESPath(expr)
		if legacyErr == nil && libErr == nil && !reflect.DeepEqual(legacyTree, libTree) {
			t.Errorf("%q: the parsers read different trees:\nlegacy  %s\nlibrary %s", expr, treeString(legacyTree), treeString(libTree))
		}
		legacy, lib := translateWith(legacyParseJMESPath, expr), translateWith(parseJMESPath, expr)
		if !reflect.DeepEqual(legacy, lib) {
			t.Errorf("%q: the translations differ:\nlegacy  %+v\nlibrary %+v", expr, legacy, lib)
		}
		if lib.ok {
			translated++
		}
	}
	if translated < 20 {
		t.Errorf("only %d of %d corpus filters translate; the agreement says little", translated, len(corpus))
	}
}

// JMESPath binds ! tighter than ==: "!a == 'x'" is "(!a) == 'x'", which
// is never true for a string 'x'. The hand-written parser read it as
// "!(a == 'x')" and so translated it into "swap only in x"; the library
// reads it as k8s-image-swapper did, and the filter is refused.
func TestNotBindsTighterThanEqualityAsInJMESPath(t *testing.T) {
	const expr = "!obj.metadata.namespace == 'kube-system'"
	var plan filterPlan
	if _, err := translateFilter(expr, &plan); !errors.Is(err, errJMESPath) {
		t.Errorf("translateFilter(%q) = %+v, %v; want it refused", expr, plan, err)
	}
	got, err := jmespath.Search(expr, map[string]any{"obj": map[string]any{"metadata": map[string]any{"namespace": "default"}}})
	if err != nil || got != false {
		t.Errorf("go-jmespath gives %v, %v in default; want false", got, err)
	}
	if legacy := translateWith(legacyParseJMESPath, expr); !legacy.ok || len(legacy.plan.onlyIn) != 1 {
		t.Errorf("the legacy parser's translation is %+v; this test documents that it read the filter as !(namespace == 'kube-system')", legacy)
	}
}

func treeString(n *jpNode) string {
	if n == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("{")
	b.WriteString([]string{"field", "string", "bool", "list", "not", "and", "or", "cmp", "call"}[n.kind])
	if len(n.path) > 0 {
		b.WriteString(" " + strings.Join(n.path, "."))
	}
	if n.str != "" {
		b.WriteString(" " + n.str)
	}
	for _, a := range n.args {
		b.WriteString(" " + treeString(a))
	}
	b.WriteString("}")
	return b.String()
}

// --- semantics ----------------------------------------------------------

// filterSample is one container of one Pod, as k8s-image-swapper's filters
// see it ({obj, container}) and as image-swapper's rules do.
type filterSample struct {
	doc   map[string]any
	ns    string
	ref   reference.Reference
	ctx   rules.Context
	label string
}

// filterSamples crosses namespaces, Pods and images. Images are written
// normalised, so that a filter over container.image sees what the
// translated CEL condition sees.
func filterSamples(t testing.TB) []filterSample {
	t.Helper()
	namespaces := []string{"kube-system", "default", "team-dev", "tmp-x", "playground", "a", "b", "sandbox-1"}
	type pod struct {
		kind, name  string
		labels, ann map[string]string
	}
	pods := []pod{
		{"Pod", "web", nil, nil},
		{"Pod", "it's", map[string]string{"team": "a"}, map[string]string{"example.com/skip": "true"}},
		{"Job", "batch", map[string]string{"team": "b", "app.kubernetes.io/name": "x"}, nil},
	}
	images := []string{
		"docker.io/library/nginx:latest",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1",
		"ghcr.io/org/app:2",
		"quay.io/x/y:3",
	}
	var out []filterSample
	for _, ns := range namespaces {
		for _, p := range pods {
			for _, img := range images {
				ref, err := reference.Parse(img)
				if err != nil || ref.String() != img {
					t.Fatalf("sample image %q is not written normalised (%q, %v)", img, ref.String(), err)
				}
				meta := map[string]any{"namespace": ns, "name": p.name}
				if p.labels != nil {
					meta["labels"] = toAny(p.labels)
				}
				if p.ann != nil {
					meta["annotations"] = toAny(p.ann)
				}
				container := map[string]any{"name": "main", "image": img}
				doc := map[string]any{
					"obj":       map[string]any{"kind": p.kind, "metadata": meta, "spec": map[string]any{"containers": []any{container}}},
					"container": container,
				}
				out = append(out, filterSample{
					doc: doc, ns: ns, ref: ref, label: ns + "/" + p.kind + "/" + p.name + " " + img,
					ctx: rules.Context{Namespace: ns, Object: rules.Object{Kind: p.kind, Name: p.name, Labels: p.labels, Annotations: p.ann}},
				})
			}
		}
	}
	return out
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// skips reports whether the plan leaves the sample alone, as the
// translated configuration does: a namespace exclusion, a namespace
// outside an onlyIn set, or a skip condition.
func (p filterPlan) skips(t testing.TB, s filterSample, conds []*rules.Condition) bool {
	for _, pat := range p.exclude {
		g, err := glob.Compile(pat)
		if err != nil {
			t.Fatalf("exclusion %q does not compile: %v", pat, err)
		}
		if g.Match(s.ns) {
			return true
		}
	}
	for _, in := range p.onlyIn {
		if !slices.Contains(in, s.ns) {
			return true
		}
	}
	for _, c := range conds {
		ok, err := c.Eval(s.ref, &s.ctx)
		if err != nil {
			t.Fatalf("evaluating %v: %v", c, err)
		}
		if ok {
			return true
		}
	}
	return false
}

// checkFilterSemantics translates expr and, when it translates, checks
// that on every sample the translation skips exactly the containers that
// k8s-image-swapper skipped: those for which go-jmespath evaluates the
// filter to true (an error or a non-boolean skips nothing).
func checkFilterSemantics(t testing.TB, expr string, samples []filterSample) bool {
	t.Helper()
	var plan filterPlan
	_, err := translateFilter(expr, &plan)
	if err != nil {
		if !errors.Is(err, errJMESPath) {
			t.Fatalf("translateFilter(%q): %v, which is not errJMESPath", expr, err)
		}
		if !reflect.DeepEqual(plan, filterPlan{}) {
			t.Fatalf("a refused filter %q changed the plan: %+v", expr, plan)
		}
		return false
	}
	var conds []*rules.Condition
	for _, s := range plan.skip {
		c, err := rules.CompileCondition(s)
		if err != nil {
			t.Fatalf("%q translates to a condition that does not compile: %v", expr, err)
		}
		conds = append(conds, c)
	}
	compiled, err := jmespath.Compile(expr)
	if err != nil {
		t.Fatalf("%q translated, but go-jmespath does not compile it: %v", expr, err)
	}
	for _, s := range samples {
		res, err := compiled.Search(s.doc)
		want := err == nil && res == true
		if got := plan.skips(t, s, conds); got != want {
			t.Fatalf("%q on %s: the translation skips = %v, go-jmespath says %v (%v, %v); plan %+v", expr, s.label, got, want, res, err, plan)
		}
	}
	return true
}

func TestTranslatedFiltersSkipWhatGoJMESPathSkips(t *testing.T) {
	samples := filterSamples(t)
	n := 0
	for _, expr := range filterCorpus(t) {
		if checkFilterSemantics(t, expr, samples) {
			n++
		}
	}
	if n < 20 {
		t.Errorf("only %d corpus filters translated", n)
	}
}

// FuzzTranslateFilter checks any filter: it is refused with errJMESPath
// and leaves the plan alone, or it translates into conditions that
// compile and skip, on every sample, exactly what go-jmespath's own
// evaluation of the filter skips.
func FuzzTranslateFilter(f *testing.F) {
	for _, expr := range filterCorpus(f) {
		f.Add(expr)
	}
	samples := filterSamples(f)
	f.Fuzz(func(t *testing.T, expr string) {
		if len(expr) > 2000 || !utf8.ValidString(expr) {
			return
		}
		checkFilterSemantics(t, expr, samples)
	})
}
