package engine

import (
	"fmt"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// Prewarm decides on an image for every namespace at once, for filling the
// mirror before any Pod asks (image-swapper mirror without a namespace).
// Decide with an empty namespace would judge namespace selectors and CEL
// conditions against a namespace that does not exist, and a config that
// swaps only in labelled namespaces would pre-warm nothing. Prewarm instead
// takes every scope (a rule's or mirroring's namespace selector, object
// selector and condition) as satisfiable by some namespace:
//
//   - a scoped swap rule gives a target, and the rules after it still
//     apply, since they decide in the namespaces outside its scope;
//   - a scoped keep or deny rule is passed over for the same reason;
//   - an unscoped keep rule, or an unscoped deny rule that enforces, ends
//     the walk: no namespace gets past it.
//
// A target the allow and deny lists refuse (in enforce mode) is dropped,
// so an image that only a deny rule or the lists would touch is not
// copied. Prewarm returns one swap decision per target some namespace
// could swap the image to, in rule precedence order; when there is none,
// it returns one keep or deny decision that says why.
func (e *Engine) Prewarm(s Subject) []Decision {
	ref, err := reference.Parse(s.Image)
	if err != nil || !e.cfg.SwapEnabled() {
		return []Decision{e.Decide(s)}
	}
	if _, inTarget := e.rules.Produced(ref); inTarget {
		return []Decision{e.Decide(s)}
	}
	// Only the image counts: no namespace, no object.
	ctx := rules.Context{Object: rules.Object{Kind: s.Object.Kind}}
	none := Decision{Image: s.Image, Normalized: ref.String(), Action: config.ActionKeep, Target: s.Image}
	var out []Decision
	seen := map[string]bool{}
	matched := false
	e.rules.Walk(ref, &ctx, func(rule *rules.Rule, _ string) bool {
		matched = true
		scoped := rule.Scoped()
		switch rule.Action {
		case config.ActionDeny:
			mode := e.mode(rule.Mode)
			if mode != config.ModeEnforce || scoped {
				none.because(fmt.Sprintf("deny rule %s (%s) passed over: it does not deny everywhere", rule.Name, rule.Describe()))
				return true
			}
			msg := fmt.Sprintf("denied by rule %s (%s)", rule.Name, rule.Describe())
			if rule.Message != "" {
				msg += ": " + rule.Message
			}
			none.violate(rule.Name, msg, mode)
			return false
		case config.ActionKeep:
			if scoped {
				none.because(fmt.Sprintf("keep rule %s (%s) passed over: it does not keep everywhere", rule.Name, rule.Describe()))
				return true
			}
			none.Rule = rule.Name
			none.because(fmt.Sprintf("kept by rule %s (%s) in every namespace", rule.Name, rule.Describe()))
			return false
		}
		if d, ok := e.prewarmSwap(&none, ref, rule); ok && !seen[d.Target] {
			seen[d.Target] = true
			out = append(out, d)
		}
		return scoped
	})
	if len(out) > 0 {
		return out
	}
	if !matched {
		none.because(fmt.Sprintf("no swap rule matches %s (registry %s is not a source registry)", none.Normalized, ref.Registry))
	}
	return []Decision{none}
}

// prewarmSwap is the decision of a swap rule that some namespace could
// apply, unless the lists refuse it; a refusal is recorded on none.
func (e *Engine) prewarmSwap(none *Decision, ref reference.Reference, rule *rules.Rule) (Decision, bool) {
	target, err := rule.Target(ref)
	if err != nil {
		none.because(err.Error())
		return Decision{}, false
	}
	d := Decision{Image: none.Image, Normalized: none.Normalized, Action: config.ActionSwap, Target: target.String(), Rule: rule.Name}
	d.because(fmt.Sprintf("swapped by rule %s (%s) to %s where its scope and mirroring's hold", rule.Name, rule.Describe(), d.Target))
	switch v := e.lists.Check(ref, &target, false); {
	case v.Denied:
		d.violate(v.Rule, fmt.Sprintf("denied by %s: %s", v.Rule, v.Reason), e.mode(e.lists.Mode))
		if d.Denied() {
			none.violate(v.Rule, fmt.Sprintf("denied by %s: %s", v.Rule, v.Reason), e.mode(e.lists.Mode))
			return Decision{}, false
		}
	case v.Reason != "":
		d.because(v.Reason)
	}
	return d, true
}
