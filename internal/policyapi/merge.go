package policyapi

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/policy"
)

// Outcome is what merging made of one policy object, for its status.
type Outcome struct {
	// Accepted says the object is valid and merged; Reason and Message
	// say why not, or what of it was passed over.
	Accepted bool
	Reason   string
	Message  string
	// Exceptions is set for an ImagePolicy with exceptions: whether they
	// were accepted, and why (ExceptionsReason, ExceptionsMessage).
	Exceptions         bool
	ExceptionsAccepted bool
	ExceptionsReason   string
	ExceptionsMessage  string
}

// Cluster is the configuration file merged with the ClusterImagePolicies:
// the policy of every namespace without ImagePolicies, and the base of
// those with some (Cluster.Namespace).
type Cluster struct {
	cfg     *config.Config
	sources []policy.Source
	opts    []engine.Option
	engine  *engine.Engine
	// exceptionsBy names the accepted ClusterImagePolicies that allow
	// namespace exceptions.
	exceptionsBy []string
	// Outcomes are by ClusterImagePolicy name.
	Outcomes map[string]Outcome
}

// MergeCluster merges the ClusterImagePolicies, in name order, with the
// configuration base, compiling engines with opts. Each policy is checked
// on its own first, then merged; one that is invalid, or conflicts with
// the configuration or a policy merged before it (a rule collision, say),
// is left out and its Outcome says why. The merge is:
//
//   - rules: added after the file's (so within a precedence tier the
//     file's come first), named after their object;
//   - policies: allowList and denyList entries added to the file's; the
//     lists' mode is the strictest of the file's and the policies';
//   - security.scanning: failOnCritical if any says so, the lowest
//     severity and maxCVSS given, skipImages and ignore entries added.
//
// An error means base itself does not compile.
func MergeCluster(base *config.Config, policies []ClusterImagePolicy, opts ...engine.Option) (*Cluster, error) {
	c := &Cluster{cfg: base, opts: opts, Outcomes: make(map[string]Outcome, len(policies))}
	e, err := engine.New(base, opts...)
	if err != nil {
		return nil, err
	}
	c.engine = e
	for _, p := range sortedByName(policies) {
		if err := checkCluster(base, &p); err != nil {
			c.Outcomes[p.Name] = Outcome{Reason: ReasonInvalid, Message: err.Error()}
			continue
		}
		cfg := mergeCluster(c.cfg, &p)
		sources := append(slices.Clip(c.sources), clusterSource(&p))
		e, err := engine.New(cfg, append(slices.Clip(opts), engine.WithPolicySources(sources...))...)
		if err != nil {
			c.Outcomes[p.Name] = Outcome{Reason: ReasonConflict, Message: "conflicts with the configuration or a ClusterImagePolicy before it by name: " + err.Error()}
			continue
		}
		c.cfg, c.sources, c.engine = cfg, sources, e
		if p.Spec.AllowNamespaceExceptions {
			c.exceptionsBy = append(c.exceptionsBy, objectName(KindClusterImagePolicy, "", p.Name))
		}
		c.Outcomes[p.Name] = Outcome{Accepted: true, Reason: ReasonValid, Message: "merged with the configuration"}
	}
	return c, nil
}

// Engine decides for namespaces without ImagePolicies.
func (c *Cluster) Engine() *engine.Engine { return c.engine }

// Namespace is the policy in force in one namespace.
type Namespace struct {
	Name   string
	Engine *engine.Engine
	// ModeFrom names the ImagePolicy whose mode is the namespace's floor,
	// Mode; both empty when no ImagePolicy sets a mode.
	ModeFrom string
	Mode     config.Mode
	// SwapFrom names the ImagePolicy whose swap policy the namespace
	// uses; empty when the configuration's applies.
	SwapFrom string
	// Outcomes are by ImagePolicy name.
	Outcomes map[string]Outcome
}

// Namespace merges the ImagePolicies of namespace ns, in name order, with
// the cluster's policy. Each can only tighten it:
//
//   - denyList entries deny images in the namespace;
//   - an allowList is a further list every image must match (original or
//     swapped reference), in addition to the cluster's allowList, and
//     being swapped does not pass it; with several ImagePolicies, an image
//     must match each one's;
//   - mode is a floor: the global mode, policies.mode and each rule's mode
//     become at least as strict (audit < warn < enforce);
//   - swap sets the namespace's swap policy; the first ImagePolicy by
//     name that sets one wins, and the others say so in their status;
//   - exceptions become ignore entries for ns only, and only when a
//     ClusterImagePolicy allows namespace exceptions; otherwise they are
//     ignored and the ImagePolicy's status says why. Expired exceptions
//     never apply (the vulnerability gate checks expiry at every verdict);
//     now is for the status only.
//
// An invalid ImagePolicy is left out, and its Outcome says why.
func (c *Cluster) Namespace(ns string, policies []ImagePolicy, now time.Time) *Namespace {
	n := &Namespace{Name: ns, Engine: c.engine, Outcomes: make(map[string]Outcome, len(policies))}
	if len(policies) == 0 {
		return n
	}
	var accepted []*ImagePolicy
	for _, p := range sortedByName(policies) {
		if err := checkNamespaced(&p); err != nil {
			n.Outcomes[p.Name] = Outcome{Reason: ReasonInvalid, Message: err.Error()}
			continue
		}
		accepted = append(accepted, &p)
	}
	for {
		e, err := c.namespaceEngine(n, ns, accepted, now)
		if err == nil {
			n.Engine = e
			return n
		}
		// Each part was checked alone, so this is a conflict of parts
		// (none is known today): leave out the last policy and try again,
		// so that the others still apply.
		last := accepted[len(accepted)-1]
		n.Outcomes[last.Name] = Outcome{Reason: ReasonConflict, Message: "conflicts with the cluster's policy: " + err.Error()}
		accepted = accepted[:len(accepted)-1]
		if len(accepted) == 0 {
			return n
		}
	}
}

// namespaceEngine compiles the cluster's policy tightened by policies, and
// records their outcomes in n.
func (c *Cluster) namespaceEngine(n *Namespace, ns string, policies []*ImagePolicy, now time.Time) (*engine.Engine, error) {
	cfg := *c.cfg
	cfg.Security.Scanning.Ignore = slices.Clip(cfg.Security.Scanning.Ignore)
	sources := slices.Clip(c.sources)
	n.ModeFrom, n.Mode, n.SwapFrom = "", "", ""
	for _, p := range policies {
		name := objectName(KindImagePolicy, ns, p.Name)
		out := Outcome{Accepted: true, Reason: ReasonValid, Message: "merged with the cluster's policy"}
		sources = append(sources, policy.Source{Path: name + " spec", AllowList: p.Spec.AllowList, DenyList: p.Spec.DenyList, Narrows: true})
		if m := p.Spec.Mode; m != "" && rank(m) > rank(n.Mode) {
			n.ModeFrom, n.Mode = name, m
		}
		if s := p.Spec.Swap; s != "" {
			switch {
			case s == config.SwapAlways && c.cfg.SwapPolicy() != config.SwapAlways:
				// always swaps to images not mirrored yet, which the
				// allow list then judges as mirrors: a namespace may not
				// loosen the cluster's check that the mirror has them.
				out.Message += fmt.Sprintf("; spec.swap always is not used: it is looser than the cluster's %s (an ImagePolicy only tightens)", c.cfg.SwapPolicy())
			case n.SwapFrom == "":
				n.SwapFrom = name
				cfg.Mirroring.Swap = s
			case s != cfg.Mirroring.Swap:
				out.Message += fmt.Sprintf("; spec.swap %s is not used: %s, first by name, sets %s", s, n.SwapFrom, cfg.Mirroring.Swap)
			}
		}
		if len(p.Spec.Exceptions) > 0 {
			out.Exceptions = true
			c.exceptions(&out, &cfg, ns, p, now)
		}
		n.Outcomes[p.Name] = out
	}
	if n.Mode != "" {
		raiseModes(&cfg, n.Mode)
	}
	return engine.New(&cfg, append(slices.Clip(c.opts), engine.WithPolicySources(sources...))...)
}

// exceptions adds the exceptions of p to cfg where the cluster allows
// them, and says what became of them in out.
func (c *Cluster) exceptions(out *Outcome, cfg *config.Config, ns string, p *ImagePolicy, now time.Time) {
	if len(c.exceptionsBy) == 0 {
		out.ExceptionsReason = ReasonNamespaceExceptionsNotAllowed
		out.ExceptionsMessage = fmt.Sprintf("spec.exceptions are ignored: no ClusterImagePolicy sets allowNamespaceExceptions: true, so the %d exception(s) do not apply", len(p.Spec.Exceptions))
		return
	}
	var expired []string
	for i, x := range p.Spec.Exceptions {
		entry := x.ignoreEntry(ns)
		if end, ok := entry.IgnoreExpiry(); ok && !now.Before(end) {
			expired = append(expired, fmt.Sprintf("spec.exceptions[%d] (%s) expired on %s", i, x.ID, x.Expires))
		}
		cfg.Security.Scanning.Ignore = append(cfg.Security.Scanning.Ignore, entry)
	}
	out.ExceptionsAccepted = true
	out.ExceptionsReason = ReasonAllowedByClusterPolicy
	out.ExceptionsMessage = "allowed by " + strings.Join(c.exceptionsBy, ", ")
	switch {
	case len(expired) == len(p.Spec.Exceptions):
		out.ExceptionsAccepted = false
		out.ExceptionsReason = ReasonExpired
		out.ExceptionsMessage = "every exception has expired and none applies: " + strings.Join(expired, ", ")
	case len(expired) > 0:
		out.ExceptionsMessage += "; no longer applying: " + strings.Join(expired, ", ")
	}
}

// ignoreEntry is the exception as an ignore entry of namespace ns.
func (x Exception) ignoreEntry(ns string) config.IgnoreEntry {
	return config.IgnoreEntry{ID: x.ID, Images: x.Images, Namespaces: []string{ns}, Expires: x.Expires, Reason: x.Reason}
}

// raiseModes makes every mode of cfg at least floor.
func raiseModes(cfg *config.Config, floor config.Mode) {
	if rank(cfg.EffectiveMode()) < rank(floor) {
		cfg.Mode = floor
	}
	if cfg.Policies.Mode != "" && rank(cfg.Policies.Mode) < rank(floor) {
		cfg.Policies.Mode = floor
	}
	rules := slices.Clone(cfg.Rules)
	for i := range rules {
		if rules[i].Mode != "" && rank(rules[i].Mode) < rank(floor) {
			rules[i].Mode = floor
		}
	}
	cfg.Rules = rules
}

// rank orders the modes by strictness; "" ranks below audit.
func rank(m config.Mode) int {
	switch m {
	case config.ModeAudit:
		return 1
	case config.ModeWarn:
		return 2
	case config.ModeEnforce:
		return 3
	}
	return 0
}

// severityRank orders security.scanning.severity; lower is stricter.
func severityRank(s string) int {
	return slices.Index([]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}, strings.ToUpper(s))
}

// mergeCluster is cfg with p merged in (its lists go in as a
// policy.Source).
func mergeCluster(cfg *config.Config, p *ClusterImagePolicy) *config.Config {
	next := *cfg
	next.Rules = slices.Clip(cfg.Rules)
	for i, r := range p.Spec.Rules {
		r.Name = clusterRuleName(p.Name, i, r.Name)
		next.Rules = append(next.Rules, r)
	}
	if m := p.Spec.Policies.Mode; m != "" && rank(m) > rank(cfg.PolicyMode()) {
		next.Policies.Mode = m
	}
	s, ps := &next.Security.Scanning, p.Spec.Security.Scanning
	s.FailOnCritical = s.FailOnCritical || ps.FailOnCritical
	if ps.Severity != "" && (s.Severity == "" || severityRank(ps.Severity) < severityRank(s.Severity)) {
		s.Severity = ps.Severity
	}
	if ps.MaxCVSS != nil && (s.MaxCVSS == nil || *ps.MaxCVSS < *s.MaxCVSS) {
		v := *ps.MaxCVSS
		s.MaxCVSS = &v
	}
	s.SkipImages = append(slices.Clip(s.SkipImages), ps.SkipImages...)
	s.Ignore = append(slices.Clip(s.Ignore), ps.Ignore...)
	return &next
}

func clusterSource(p *ClusterImagePolicy) policy.Source {
	return policy.Source{
		Path:      objectName(KindClusterImagePolicy, "", p.Name) + " spec.policies",
		AllowList: p.Spec.Policies.AllowList,
		DenyList:  p.Spec.Policies.DenyList,
	}
}

// clusterRuleName names rule i of ClusterImagePolicy object in
// decisions: "ClusterImagePolicy/base spec.rules[0]", or with its name,
// "ClusterImagePolicy/base NAME".
func clusterRuleName(object string, i int, name string) string {
	if name == "" {
		name = fmt.Sprintf("spec.rules[%d]", i)
	}
	return objectName(KindClusterImagePolicy, "", object) + " " + name
}

// objectName names a policy object in decisions and messages:
// "ClusterImagePolicy/base", "ImagePolicy/team-a/strict".
func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

// DecidedBy names the policy object a decision's rule (Decision.Rule, or
// a Violation's) comes from, such as "ImagePolicy/team-a/strict", or ""
// when it comes from the configuration file.
func DecidedBy(rule string) string {
	for _, kind := range []string{KindClusterImagePolicy, KindImagePolicy} {
		if strings.HasPrefix(rule, kind+"/") {
			name, _, _ := strings.Cut(rule, " ")
			return name
		}
	}
	return ""
}

// checkCluster checks a ClusterImagePolicy on its own, as a configuration
// holding only its sections; problems are named by their path in the
// object ("spec.rules[0].target: ...").
func checkCluster(base *config.Config, p *ClusterImagePolicy) error {
	s := p.Spec.Security.Scanning
	one := &config.Config{
		TargetRegistry: base.TargetRegistry,
		Rules:          p.Spec.Rules,
		Policies:       p.Spec.Policies,
		Security: config.Security{Scanning: config.Scanning{
			FailOnCritical: s.FailOnCritical, Severity: s.Severity, MaxCVSS: s.MaxCVSS,
			SkipImages: s.SkipImages, Ignore: s.Ignore,
		}},
	}
	if err := one.Validate(); err != nil {
		return inObject(err, func(path string) string {
			if path == "targetRegistry" {
				return "targetRegistry (of the configuration file)"
			}
			return "spec." + path
		})
	}
	if _, err := engine.New(one); err != nil {
		// CEL conditions and rule collisions; messages start with the
		// key path.
		return inObject(err, nil)
	}
	return nil
}

// checkNamespaced checks an ImagePolicy on its own.
func checkNamespaced(p *ImagePolicy) error {
	one := &config.Config{
		Policies:  config.Policies{AllowList: p.Spec.AllowList, DenyList: p.Spec.DenyList, Mode: p.Spec.Mode},
		Mirroring: config.Mirroring{Swap: p.Spec.Swap},
	}
	for _, x := range p.Spec.Exceptions {
		one.Security.Scanning.Ignore = append(one.Security.Scanning.Ignore, x.ignoreEntry(cmp.Or(p.Namespace, "default")))
	}
	err := one.Validate()
	if err == nil {
		return nil
	}
	return inObject(err, func(path string) string {
		for _, r := range []struct{ from, to string }{
			{"policies.mode", "spec.mode"},
			{"policies.", "spec."},
			{"mirroring.swap", "spec.swap"},
			{"security.scanning.ignore", "spec.exceptions"},
		} {
			if rest, ok := strings.CutPrefix(path, r.from); ok {
				return r.to + rest
			}
		}
		return "spec." + path
	})
}

// inObject rewrites the key paths of configuration errors with rename,
// one problem per line. Other errors (the engine's, which start with the
// key path) get "spec." in front.
func inObject(err error, rename func(path string) string) error {
	var errs []error
	for _, e := range flatten(err) {
		var fe *config.FieldError
		if rename != nil && errors.As(e, &fe) && fe.Path != "" {
			errs = append(errs, fmt.Errorf("%s: %s", rename(fe.Path), fe.Reason))
			continue
		}
		errs = append(errs, fmt.Errorf("spec.%s", e.Error()))
	}
	return errors.Join(errs...)
}

// flatten lists the errors an errors.Join holds, recursively.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// sortedByName returns a copy of objects sorted by name.
func sortedByName[T any, P interface {
	*T
	GetName() string
}](objects []T) []T {
	out := slices.Clone(objects)
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(P(&a).GetName(), P(&b).GetName()) })
	return out
}
