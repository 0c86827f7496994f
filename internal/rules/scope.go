package rules

import (
	"fmt"
	"maps"
	"sync"

	"github.com/google/cel-go/cel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Context is what selectors and conditions look at besides the image. The
// CLI (a workload's manifest) and the webhook (the Pod it creates) fill it
// the same way, so that one rule decides the same in CI and at admission.
type Context struct {
	Namespace       string
	NamespaceLabels map[string]string
	// Object is the Pod the image runs in: the Pod at admission, the pod
	// template in a workload's manifest. For an image found outside a pod
	// spec (a custom kind's path), it is the object that holds the image.
	Object Object
	// Workload is the object that owns the Pod, as far as it is known
	// without asking the API server; see Workload.
	Workload Workload
}

// Object is the Kubernetes object that holds the image.
type Object struct {
	Kind        string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Workload names the object a Pod belongs to. In a manifest it is the
// object the pod template is in (Deployment "web"; a bare Pod is its own
// workload). At admission it comes from the Pod's controller
// ownerReference, with a ReplicaSet named "<deployment>-<pod-template-hash>"
// taken back to its Deployment; a Pod without a controller is its own
// workload. Kind and Name are empty when nothing is known.
type Workload struct {
	Kind string
	Name string
}

// namespaceNameLabel is set by kube-apiserver on every namespace, so
// selectors may use it even where the labels are not known (the CLI).
const namespaceNameLabel = "kubernetes.io/metadata.name"

// namespaceLabels presents a namespace's labels with namespaceNameLabel
// added, without copying the map on the hot path.
type namespaceLabels struct {
	name   string
	labels map[string]string
}

func (n namespaceLabels) Has(key string) bool {
	if key == namespaceNameLabel && n.name != "" {
		return true
	}
	_, ok := n.labels[key]
	return ok
}

func (n namespaceLabels) Get(key string) string {
	if key == namespaceNameLabel && n.name != "" {
		return n.name
	}
	return n.labels[key]
}

func (n namespaceLabels) Lookup(key string) (string, bool) {
	return n.Get(key), n.Has(key)
}

// Scope limits where a rule or swapping applies: a namespace selector, an
// object selector and a CEL condition, all optional.
type Scope struct {
	namespace labels.Selector
	object    labels.Selector
	condition *Condition
}

// NewScope compiles the parts of a scope. Errors name the key (relative to
// the caller's path) that is wrong.
func NewScope(namespaceSelector, objectSelector *metav1.LabelSelector, condition string) (Scope, error) {
	var s Scope
	var err error
	if namespaceSelector != nil {
		if s.namespace, err = metav1.LabelSelectorAsSelector(namespaceSelector); err != nil {
			return Scope{}, fmt.Errorf("namespaceSelector: %w", err)
		}
	}
	if objectSelector != nil {
		if s.object, err = metav1.LabelSelectorAsSelector(objectSelector); err != nil {
			return Scope{}, fmt.Errorf("objectSelector: %w", err)
		}
	}
	if condition != "" {
		if s.condition, err = CompileCondition(condition); err != nil {
			return Scope{}, fmt.Errorf("condition: %w", err)
		}
	}
	return s, nil
}

// Matches reports whether ref in ctx is inside the scope; when it is not,
// the reason says which part excluded it.
func (s Scope) Matches(ref reference.Reference, ctx *Context) (bool, string) {
	if s.namespace != nil && !s.namespace.Matches(namespaceLabels{ctx.Namespace, ctx.NamespaceLabels}) {
		return false, fmt.Sprintf("namespace %q does not match namespaceSelector %q", ctx.Namespace, s.namespace)
	}
	if s.object != nil && !s.object.Matches(labels.Set(ctx.Object.Labels)) {
		return false, fmt.Sprintf("object labels do not match objectSelector %q", s.object)
	}
	if s.condition != nil {
		ok, err := s.condition.Eval(ref, ctx)
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			return false, fmt.Sprintf("condition %q is false", s.condition.source)
		}
	}
	return true, ""
}

// Scoped reports whether the rule applies only where a namespace selector,
// an object selector or a condition holds. Pre-warming (engine.Prewarm)
// needs to know: such a rule applies in some namespaces, and the rules
// after it in the others.
func (r *Rule) Scoped() bool {
	return r.scope.namespace != nil || r.scope.object != nil || r.scope.condition != nil
}

// Condition is a compiled CEL expression over the variables image,
// namespaceObject, object and workload; it must evaluate to a bool.
type Condition struct {
	source  string
	program cel.Program
}

// celEnv is built on first use: building it costs milliseconds, which
// every command would otherwise pay at start-up.
var celEnv = sync.OnceValue(func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("image", cel.MapType(cel.StringType, cel.StringType)),
		// namespace is a reserved word of CEL, which no expression can
		// name; namespaceObject (Kubernetes' own name for it in admission
		// policies) is the one to use. namespace stays declared so that
		// the error says "reserved identifier", not "undeclared reference".
		cel.Variable("namespace", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("namespaceObject", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("workload", cel.MapType(cel.StringType, cel.StringType)),
	)
	if err != nil {
		panic(fmt.Sprintf("building the CEL environment: %v", err)) // a programming error, caught by every test
	}
	return env
})

// CompileCondition parses and type-checks a CEL expression.
func CompileCondition(expr string) (*Condition, error) {
	ast, issues := celEnv().Compile(expr)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("invalid CEL expression %q: %w", expr, issues.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("CEL expression %q must evaluate to a bool, not %s", expr, ast.OutputType())
	}
	prg, err := celEnv().Program(ast)
	if err != nil {
		return nil, fmt.Errorf("CEL expression %q: %w", expr, err)
	}
	return &Condition{source: expr, program: prg}, nil
}

// Eval evaluates the condition for one image.
func (c *Condition) Eval(ref reference.Reference, ctx *Context) (bool, error) {
	nsLabels := make(map[string]string, len(ctx.NamespaceLabels)+1)
	maps.Copy(nsLabels, ctx.NamespaceLabels)
	if ctx.Namespace != "" {
		nsLabels[namespaceNameLabel] = ctx.Namespace
	}
	namespace := map[string]any{"name": ctx.Namespace, "labels": nsLabels}
	out, _, err := c.program.Eval(map[string]any{
		"image": map[string]string{
			"reference":  ref.String(),
			"name":       ref.Name(),
			"registry":   ref.Registry,
			"repository": ref.Repository,
			"tag":        ref.Tag,
			"digest":     ref.Digest,
		},
		"namespace":       namespace,
		"namespaceObject": namespace,
		"object": map[string]any{
			"kind":        ctx.Object.Kind,
			"name":        ctx.Object.Name,
			"labels":      nonNil(ctx.Object.Labels),
			"annotations": nonNil(ctx.Object.Annotations),
		},
		"workload": map[string]string{"kind": ctx.Workload.Kind, "name": ctx.Workload.Name},
	})
	if err != nil {
		return false, fmt.Errorf("evaluating CEL condition %q: %w", c.source, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("CEL condition %q returned %T, not a bool", c.source, out.Value())
	}
	return b, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
