// Package rules turns image references into swap targets: it compiles the
// configured rules (and the rules sourceRegistries implies), finds the rule
// that applies to an image by precedence, and renders its target.
package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Tier is a rule's precedence class; lower tiers win.
type Tier int

// The tiers, in precedence order.
const (
	TierImage      Tier = iota // exact image
	TierRepository             // repository wildcard
	TierRegistry               // registry host
	TierDefault                // no matcher
	tierCount
)

func (t Tier) String() string {
	return [...]string{"exact image", "repository", "registry", "default"}[t]
}

// Rule is one compiled rule.
type Rule struct {
	// Name is the configured name, or the key path of the rule.
	Name    string
	Tier    Tier
	Action  config.Action
	Mode    config.Mode // empty: the global mode
	Message string

	image   reference.Reference // TierImage
	pattern glob.Pattern        // TierRepository and TierRegistry
	target  Template
	// fixedTarget is set for an exact-image rule whose target names its own
	// tag or digest.
	fixedTarget *reference.Reference
	scope       Scope
}

// Describe says what the rule matches, for explanations.
func (r *Rule) Describe() string {
	switch r.Tier {
	case TierImage:
		return fmt.Sprintf("image %s", r.image)
	case TierRepository:
		return fmt.Sprintf("repository %s", r.pattern)
	case TierRegistry:
		return fmt.Sprintf("registry %s", r.pattern)
	}
	return "any image"
}

// Set is the compiled rule set of one configuration.
type Set struct {
	tiers [tierCount][]*Rule
	// swaps are the swap rules, in precedence order: Produced asks each
	// whether it renders a reference.
	swaps []*Rule
}

// Compile builds the rule set of cfg. cfg must have passed validation; the
// errors here are those only compiling can find (CEL, templates), each with
// its key path.
func Compile(cfg *config.Config) (*Set, error) {
	s := &Set{}
	var errs []error
	for i, rc := range cfg.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		r, err := compileRule(rc, path, cfg.TargetRegistry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.add(r)
	}
	if cfg.TargetRegistry != "" {
		tmpl, err := ParseTemplate(DefaultTarget, cfg.TargetRegistry)
		if err != nil {
			errs = append(errs, fmt.Errorf("targetRegistry: %w", err))
		}
		for i, host := range cfg.SourceRegistries {
			path := fmt.Sprintf("sourceRegistries[%d]", i)
			pat, err := glob.Compile(host)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			s.add(&Rule{Name: path, Tier: TierRegistry, Action: config.ActionSwap, pattern: pat, target: tmpl})
		}
	}
	for _, tier := range s.tiers {
		for _, r := range tier {
			if r.Action == config.ActionSwap {
				s.swaps = append(s.swaps, r)
			}
		}
	}
	if err := s.checkCollisions(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (s *Set) add(r *Rule) {
	s.tiers[r.Tier] = append(s.tiers[r.Tier], r)
}

func compileRule(rc config.Rule, path, target string) (*Rule, error) {
	r := &Rule{Name: rc.Name, Action: rc.EffectiveAction(), Mode: rc.Mode, Message: rc.Message}
	if r.Name == "" {
		r.Name = path
	}
	var err error
	switch {
	case rc.Image != "":
		r.Tier = TierImage
		if r.image, err = reference.Parse(rc.Image); err != nil {
			return nil, fmt.Errorf("%s.image: %w", path, err)
		}
	case rc.Repository != "":
		r.Tier = TierRepository
		if r.pattern, err = glob.Compile(reference.NormalizePattern(rc.Repository)); err != nil {
			return nil, fmt.Errorf("%s.repository: %w", path, err)
		}
	case rc.Registry != "":
		r.Tier = TierRegistry
		if r.pattern, err = glob.Compile(rc.Registry); err != nil {
			return nil, fmt.Errorf("%s.registry: %w", path, err)
		}
	default:
		r.Tier = TierDefault
	}
	if r.scope, err = NewScope(rc.NamespaceSelector, rc.ObjectSelector, rc.Condition); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	if r.Action != config.ActionSwap {
		return r, nil
	}
	if rc.Target == "" {
		return nil, fmt.Errorf("%s.target: a swap rule needs a target", path)
	}
	if r.target, err = ParseTemplate(rc.Target, target); err != nil {
		return nil, fmt.Errorf("%s.target: %w", path, err)
	}
	if !r.target.Static() && !strings.Contains(r.target.Prefix(), "/") {
		// Products are recognised by their literal start; it must pin a host.
		return nil, fmt.Errorf("%s.target: %q must begin with a registry host, e.g. \"{target}/...\"", path, rc.Target)
	}
	if r.target.uses(phSuffix) && r.Tier != TierRepository {
		return nil, fmt.Errorf("%s.target: {suffix} is only defined for repository rules", path)
	}
	if r.Tier == TierImage && r.target.Static() {
		ref, err := reference.Parse(r.target.Prefix())
		if err != nil {
			return nil, fmt.Errorf("%s.target: %w", path, err)
		}
		if hasExplicitTagOrDigest(r.target.Prefix()) {
			r.fixedTarget = &ref
		}
	}
	return r, nil
}

// hasExplicitTagOrDigest reports whether a reference string names a tag or a
// digest (Parse adds ":latest" when it names neither).
func hasExplicitTagOrDigest(s string) bool {
	if strings.Contains(s, "@") {
		return true
	}
	lastSlash := strings.LastIndexByte(s, '/')
	return strings.Contains(s[lastSlash+1:], ":")
}

// checkCollisions rejects rules that would map different sources to one
// target. A swap rule that can match more than one repository must keep the
// repository in its target, and one that can match more than one registry
// must keep the registry too. Then each pair of swap rules is compared by
// what their templates produce (see findCollision), not by their text.
func (s *Set) checkCollisions() error {
	var errs []error
	for _, r := range s.swaps {
		if r.Tier == TierImage {
			continue
		}
		keepsRepo := r.target.uses(phRepository) || r.target.uses(phImage) || r.target.uses(phSuffix)
		keepsRegistry := r.target.uses(phRegistry) || r.target.uses(phImage)
		switch {
		case !keepsRepo:
			errs = append(errs, fmt.Errorf("%s: target %q maps every matching repository to one name; use {repository}, {image} or {suffix}", r.Name, r.target))
		case !keepsRegistry && r.pinnedRegistry() == "":
			errs = append(errs, fmt.Errorf("%s: target %q can map the same repository of different registries to one name; use {registry} or {image}", r.Name, r.target))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i, a := range s.swaps {
		for _, b := range s.swaps[i+1:] {
			if c, ok := findCollision(a, b); ok {
				errs = append(errs, c)
			}
		}
	}
	return errors.Join(errs...)
}

// pinnedRegistry is the one registry every image the rule matches comes
// from, or "" when it can match several.
func (r *Rule) pinnedRegistry() string {
	switch r.Tier {
	case TierRegistry:
		lit, _ := r.pattern.Literal()
		return lit
	case TierRepository:
		if host, _, ok := strings.Cut(r.pattern.Prefix(), "/"); ok {
			return host
		}
	}
	return ""
}

// Produced reports whether ref is the output of one of the swap rules, and
// of which: such a reference is never swapped again. See ProducedFrom.
func (s *Set) Produced(ref reference.Reference) (string, bool) {
	rule, _, ok := s.ProducedFrom(ref)
	return rule, ok
}

// ProducedFrom reports whether some swap rule renders exactly ref, and from
// which source image: the rule matches the source and its target template
// gives ref. A reference that only starts like a rule's targets is not a
// product; it is judged as itself.
func (s *Set) ProducedFrom(ref reference.Reference) (rule string, source reference.Reference, ok bool) {
	name := ref.Name()
	for _, r := range s.swaps {
		if src, ok := r.source(ref, name); ok {
			return r.Name, src, true
		}
	}
	return "", reference.Reference{}, false
}

// Walk visits the rules that match ref, in precedence order: tier by tier,
// file order within a tier. A rule that matches the image but whose scope
// excludes ctx is visited with outOfScope saying why. Walk stops when visit
// returns false.
func (s *Set) Walk(ref reference.Reference, ctx *Context, visit func(r *Rule, outOfScope string) bool) {
	name := ref.Name()
	for _, tier := range s.tiers {
		for _, r := range tier {
			if !r.matches(ref, name) {
				continue
			}
			_, why := r.scope.Matches(ref, ctx)
			if !visit(r, why) {
				return
			}
		}
	}
}

func (r *Rule) matches(ref reference.Reference, name string) bool {
	switch r.Tier {
	case TierImage:
		return ref == r.image
	case TierRepository:
		return r.pattern.Match(name)
	case TierRegistry:
		return r.pattern.Match(ref.Registry)
	}
	return true
}

// Target renders the reference a swap rule sends ref to.
func (r *Rule) Target(ref reference.Reference) (reference.Reference, error) {
	if r.fixedTarget != nil {
		return *r.fixedTarget, nil
	}
	var suffix string
	if r.Tier == TierRepository {
		suffix = strings.TrimPrefix(ref.Name(), r.pattern.Prefix())
	}
	s := r.target.Render(ref, suffix)
	if ref.Tag != "" {
		s += ":" + ref.Tag
	}
	if ref.Digest != "" {
		s += "@" + ref.Digest
	}
	out, err := reference.Parse(s)
	if err != nil {
		return reference.Reference{}, fmt.Errorf("rule %s renders an invalid target: %w", r.Name, err)
	}
	return out, nil
}
