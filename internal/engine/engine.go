// Package engine decides what happens to an image: it is the one place where
// swap rules, the allow and deny lists and namespace scoping meet. The CLI
// and the webhook both ask it, so a decision made in CI and one made at
// admission are the same decision.
package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/policy"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
	"github.com/image-swapper/image-swapper/internal/scan"
)

// OptOutLabel on a Pod or workload, with value OptOutValue, turns swapping
// off for it; the allow and deny lists still apply.
const (
	OptOutLabel = "image-swapper.io/swap"
	OptOutValue = "disabled"
)

// systemNamespaces are left alone unless config names them in
// namespaces.include: swapping kube-system can lock a cluster out.
var systemNamespaces = []string{"kube-system"}

// Action is what happens to an image.
type Action = config.Action

// Subject is one image to decide on, with where it was found.
type Subject struct {
	Image string
	rules.Context
	// PullKeychain holds the credentials its workload pulls with (a Pod's
	// imagePullSecrets); Admit hands it to the mirror for the source,
	// without reading it. Nil when there are none.
	PullKeychain authn.Keychain
}

// Violation is a policy verdict against an image. In enforce mode it denies
// the image; in warn and audit mode the image runs and the violation is
// reported.
type Violation struct {
	Rule    string      `json:"rule"`
	Message string      `json:"message"`
	Mode    config.Mode `json:"mode"`
}

// Decision is the engine's answer for one image.
type Decision struct {
	// Image is the reference as written.
	Image string `json:"image"`
	// Normalized is Image in its normalised form; empty when it does not parse.
	Normalized string `json:"normalized"`
	// Action is swap, keep or deny.
	Action Action `json:"action"`
	// Target is the final reference: the swap target, the image as written
	// when it is kept, or empty when it is denied.
	Target string `json:"target"`
	// Rule names what decided the action.
	Rule string `json:"rule"`
	// Reasons explain the decision, in the order they were considered.
	Reasons []string `json:"reasons"`
	// Violations are the policy verdicts against the image, in any mode.
	Violations []Violation `json:"violations,omitempty"`
	// Fallback is set when a swap was planned but the original was kept
	// because the mirror did not have the image (see Admit).
	Fallback bool `json:"fallback,omitempty"`
	// Scan is the vulnerability gate's verdict on the image, when
	// security.scanning judged it (see Scan).
	Scan *ScanVerdict `json:"scan,omitempty"`
}

// Engine is a compiled configuration. It is safe for concurrent use.
type Engine struct {
	cfg      *config.Config
	rules    *rules.Set
	lists    *policy.Lists
	swapping rules.Scope
	include  []glob.Pattern
	exclude  []glob.Pattern
	// ownNamespace is the server's namespace, excluded like kube-system.
	ownNamespace string
	// vulns is security.scanning's policy; nil when scanning is off.
	vulns *scan.Policy
	// sources are list entries from policy objects (WithPolicySources).
	sources []policy.Source
	// opts are the options New was given.
	opts []Option
}

// Option configures an Engine.
type Option func(*Engine)

// WithOwnNamespace names the namespace image-swapper runs in; it is left
// alone unless config includes it.
func WithOwnNamespace(ns string) Option {
	return func(e *Engine) { e.ownNamespace = ns }
}

// WithPolicySources adds the allow and deny list entries of policy objects
// (ClusterImagePolicies, a namespace's ImagePolicies) to the
// configuration's, named by their source in verdicts; see policy.Source.
func WithPolicySources(srcs ...policy.Source) Option {
	return func(e *Engine) { e.sources = append(e.sources, srcs...) }
}

// New compiles a validated configuration. Errors carry the key path.
func New(cfg *config.Config, opts ...Option) (*Engine, error) {
	e := &Engine{cfg: cfg, opts: slices.Clip(opts)}
	for _, o := range opts {
		o(e)
	}
	var errs []error
	var err error
	if e.rules, err = rules.Compile(cfg); err != nil {
		errs = append(errs, err)
	}
	if e.lists, err = policy.New(cfg.Policies, e.sources...); err != nil {
		errs = append(errs, err)
	}
	e.include = compilePatterns("namespaces.include", cfg.Namespaces.Include, &errs)
	e.exclude = compilePatterns("namespaces.exclude", cfg.Namespaces.Exclude, &errs)
	m := cfg.Mirroring
	if e.swapping, err = rules.NewScope(m.NamespaceSelector, m.ObjectSelector, m.Condition); err != nil {
		errs = append(errs, fmt.Errorf("mirroring.%w", err))
	}
	if cfg.Security.Scanning.Enabled {
		if e.vulns, err = scan.NewPolicy(cfg.Security.Scanning); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func compilePatterns(key string, raw []string, errs *[]error) []glob.Pattern {
	out := make([]glob.Pattern, 0, len(raw))
	for i, r := range raw {
		p, err := glob.Compile(r)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			continue
		}
		out = append(out, p)
	}
	return out
}

// Config returns the configuration the engine was built from.
func (e *Engine) Config() *config.Config { return e.cfg }

// Options returns the options the engine was compiled with, to compile a
// related configuration (a namespace's policy) the same way.
func (e *Engine) Options() []Option { return slices.Clip(e.opts) }

// AllowList is every allowList entry in force: the configuration's and
// those of policy sources that extend it.
func (e *Engine) AllowList() []string { return e.lists.AllowList() }

// Decide decides on one image, as if every swap target were mirrored.
func (e *Engine) Decide(s Subject) Decision { return e.decide(s, true) }

// Gate judges an image as it will run, without swapping it: the verdict
// of deny rules and the allow and deny lists on the image as written. The
// validating webhook uses it, since what reaches it has already been
// swapped or deliberately kept.
func (e *Engine) Gate(s Subject) Decision { return e.decide(s, false) }

// decide decides on one image; with maySwap false, a swap rule keeps the
// image instead.
func (e *Engine) decide(s Subject, maySwap bool) Decision {
	d := Decision{Image: s.Image, Action: config.ActionKeep, Target: s.Image, Reasons: make([]string, 0, 4)}
	ref, err := reference.Parse(s.Image)
	if err != nil {
		d.violate("reference", err.Error(), e.cfg.EffectiveMode())
		return d
	}
	d.Normalized = ref.String()
	if why, ok := e.excluded(s.Namespace); ok {
		d.because(why)
		return d
	}

	var swapped *reference.Reference
	// An image that some rule produced is judged with its source: writing
	// the mirror's name directly must not escape what the source's name
	// would meet (deny rules, the deny list).
	judged, mirrored := ref, false
	producer, source, inTarget := e.rules.ProducedFrom(ref)
	if inTarget {
		d.Rule = producer
		d.because(fmt.Sprintf("%s is already a target of rule %s (the mirror of %s): never swapped again", d.Normalized, producer, source))
		// An implausible source ("docker.io/a/b/c") is no real image, so
		// this is no mirror of one: the allowList judges it as itself.
		if reference.Plausible(source) {
			judged, swapped, mirrored = source, &ref, true
		}
		e.denyRules(&d, source, &s.Context)
		if d.Denied() {
			return d
		}
	}
	decided := false
	e.rules.Walk(ref, &s.Context, func(rule *rules.Rule, outOfScope string) bool {
		switch {
		case outOfScope != "":
			d.because(fmt.Sprintf("rule %s skipped: %s", rule.Name, outOfScope))
			return true
		case rule.Action == config.ActionDeny:
			// A deny rule that does not enforce lets the image go on as
			// the next rule says.
			decided = e.deny(&d, rule, "")
			return !decided
		case inTarget:
			// Only deny rules apply to an image that is already a target.
			return true
		case rule.Action == config.ActionKeep:
			d.Rule = rule.Name
			d.because(fmt.Sprintf("kept by rule %s (%s)", rule.Name, rule.Describe()))
		case maySwap:
			d.Rule = rule.Name
			swapped = e.swap(&d, ref, rule, &s.Context)
		default:
			d.because(fmt.Sprintf("rule %s (%s) would swap it; judged as written", rule.Name, rule.Describe()))
		}
		decided = true
		return false
	})
	if !decided && !inTarget {
		d.because(fmt.Sprintf("no swap rule matches %s (registry %s is not a source registry)", d.Normalized, ref.Registry))
	}

	if d.Denied() {
		return d
	}
	switch v := e.lists.Check(judged, swapped, mirrored); {
	case v.Denied:
		d.violate(v.Rule, fmt.Sprintf("denied by %s: %s", v.Rule, v.Reason), e.mode(e.lists.Mode))
	case v.Reason != "":
		d.because(v.Reason)
	}
	return d
}

// denyRules applies the deny rules that match ref, as decide does, and no
// other rule.
func (e *Engine) denyRules(d *Decision, ref reference.Reference, ctx *rules.Context) {
	e.rules.Walk(ref, ctx, func(rule *rules.Rule, outOfScope string) bool {
		if outOfScope != "" || rule.Action != config.ActionDeny {
			return true
		}
		return !e.deny(d, rule, " as the mirror of "+ref.String())
	})
}

// deny records the violation of a deny rule and reports whether it denies.
func (e *Engine) deny(d *Decision, rule *rules.Rule, how string) bool {
	msg := fmt.Sprintf("denied by rule %s (%s)%s", rule.Name, rule.Describe(), how)
	if rule.Message != "" {
		msg += ": " + rule.Message
	}
	mode := e.mode(rule.Mode)
	d.violate(rule.Name, msg, mode)
	return mode == config.ModeEnforce
}

// swap applies a swap rule unless swapping is off for the subject; it
// returns the target, or nil when the image is kept.
func (e *Engine) swap(d *Decision, ref reference.Reference, rule *rules.Rule, ctx *rules.Context) *reference.Reference {
	if !e.cfg.SwapEnabled() {
		d.because(fmt.Sprintf("rule %s would swap, but mirroring.enabled is false", rule.Name))
		return nil
	}
	if ctx.Object.Labels[OptOutLabel] == OptOutValue {
		d.because(fmt.Sprintf("rule %s would swap, but the object is labelled %s=%s", rule.Name, OptOutLabel, OptOutValue))
		return nil
	}
	if ok, why := e.swapping.Matches(ref, ctx); !ok {
		d.because(fmt.Sprintf("rule %s would swap, but mirroring is off here: %s", rule.Name, why))
		return nil
	}
	target, err := rule.Target(ref)
	if err != nil {
		d.because(err.Error())
		return nil
	}
	d.Action = config.ActionSwap
	d.Target = target.String()
	d.because(fmt.Sprintf("swapped by rule %s (%s) to %s", rule.Name, rule.Describe(), d.Target))
	return &target
}

// excluded reports whether the namespace is left alone.
func (e *Engine) excluded(ns string) (string, bool) {
	if ns == "" {
		return "", false
	}
	for _, p := range e.include {
		if p.Match(ns) {
			return "", false
		}
	}
	if ns == e.ownNamespace || slices.Contains(systemNamespaces, ns) {
		return fmt.Sprintf("namespace %s is excluded by default (add it to namespaces.include to change that)", ns), true
	}
	for i, p := range e.exclude {
		if p.Match(ns) {
			return fmt.Sprintf("namespace %s is excluded by namespaces.exclude[%d] %q", ns, i, p), true
		}
	}
	return "", false
}

func (e *Engine) mode(m config.Mode) config.Mode {
	if m != "" {
		return m
	}
	return e.cfg.EffectiveMode()
}

func (d *Decision) because(reason string) { d.Reasons = append(d.Reasons, reason) }

// violate records a policy verdict; in enforce mode it denies the image.
func (d *Decision) violate(rule, msg string, mode config.Mode) {
	d.Violations = append(d.Violations, Violation{Rule: rule, Message: msg, Mode: mode})
	switch mode {
	case config.ModeEnforce:
		d.Action = config.ActionDeny
		d.Target = ""
		d.Rule = rule
		d.because(msg)
	default:
		d.because(fmt.Sprintf("%s (%s mode: admitted)", msg, mode))
	}
}

// References parses the image and the target of a decision.
func (d Decision) References() (image, target reference.Reference, err error) {
	if image, err = reference.Parse(d.Image); err != nil {
		return image, target, err
	}
	target, err = reference.Parse(d.Target)
	return image, target, err
}

// LastReason is the reason that settled the decision.
func (d Decision) LastReason() string {
	if len(d.Reasons) == 0 {
		return string(d.Action) // decide always gives a reason; kept for safety
	}
	return d.Reasons[len(d.Reasons)-1]
}

// Denied reports whether the decision refuses the image.
func (d Decision) Denied() bool { return d.Action == config.ActionDeny }

// Summary is a one-line account of the decision.
func (d Decision) Summary() string {
	switch d.Action {
	case config.ActionSwap:
		return fmt.Sprintf("%s -> %s (rule %s)", d.Image, d.Target, d.Rule)
	case config.ActionDeny:
		return fmt.Sprintf("%s denied: %s", d.Image, strings.Join(d.Denials(), "; "))
	}
	return fmt.Sprintf("%s kept", d.Image)
}

// Denials are the messages of the violations that deny the image.
func (d Decision) Denials() []string {
	var out []string
	for _, v := range d.Violations {
		if v.Mode == config.ModeEnforce {
			out = append(out, v.Message)
		}
	}
	return out
}
