package rules

import (
	"strings"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Source is the inverse of Target: it returns the image that the rule
// renders to target, and false when the rule renders target from no image.
// It proves its answer by rendering it again, so a target that merely
// shares the rule's literal start ("registry2.example.com/team-abc" for a
// rule whose targets start "registry2.example.com/team-a") is not taken for
// one of its products unless the rule really produces it.
func (r *Rule) Source(target reference.Reference) (reference.Reference, bool) {
	return r.source(target, target.Name())
}

// source is Source with target.Name() given, which ProducedFrom computes
// once for all rules.
func (r *Rule) source(target reference.Reference, name string) (reference.Reference, bool) {
	if r.Action != config.ActionSwap {
		return reference.Reference{}, false
	}
	if r.Tier == TierImage {
		if r.fixedTarget != nil && target != *r.fixedTarget || r.fixedTarget == nil && name != r.target.Prefix() && r.target.Static() {
			return reference.Reference{}, false // the fast path
		}
		return r.image, r.produces(r.image, target)
	}
	if !strings.HasPrefix(name, r.target.Prefix()) {
		return reference.Reference{}, false // the fast path for most images
	}
	var src reference.Reference
	found := false
	r.target.bindings(name, func(b binding) bool {
		cand, ok := r.candidate(b, target)
		if ok && r.produces(cand, target) {
			src, found = cand, true
		}
		return !found
	})
	return src, found
}

// produces reports whether the rule matches src and renders it to target.
func (r *Rule) produces(src, target reference.Reference) bool {
	if !r.matches(src, src.Name()) {
		return false
	}
	got, err := r.Target(src)
	return err == nil && got == target
}

// candidate builds the source image that a set of placeholder values
// describes, with target's tag and digest.
func (r *Rule) candidate(b binding, target reference.Reference) (reference.Reference, bool) {
	var name string
	if suffix, ok := b[phSuffix]; ok {
		name = r.pattern.Prefix() + suffix
	} else {
		registry, repository := "", ""
		if image, ok := b[phImage]; ok {
			host, repo, ok := strings.Cut(image, "/")
			if !ok {
				return reference.Reference{}, false
			}
			b[phRegistry], repository = host, repo
		}
		if repo, ok := b[phRepository]; ok {
			repository = repo
		}
		if safe, ok := b[phRegistry]; ok {
			host, ok := reference.RegistryFromPathSafe(safe)
			if !ok {
				return reference.Reference{}, false
			}
			registry = host
		} else {
			registry = r.pinnedRegistry()
		}
		if registry == "" || repository == "" {
			return reference.Reference{}, false
		}
		name = registry + "/" + repository
	}
	if target.Tag != "" {
		name += ":" + target.Tag
	}
	if target.Digest != "" {
		name += "@" + target.Digest
	}
	src, err := reference.Parse(name)
	return src, err == nil
}

// binding holds the value of each placeholder in one reading of a name.
type binding map[placeholder]string

// bindings calls visit with each way of reading name as a rendering of the
// template, until visit returns false. A placeholder followed by a literal
// is tried at each place the literal occurs; {registry} never spans a '/'.
func (t Template) bindings(name string, visit func(binding) bool) {
	t.bind(0, name, binding{}, visit)
}

func (t Template) bind(i int, rest string, b binding, visit func(binding) bool) bool {
	if i == len(t.parts) {
		if rest != "" {
			return true
		}
		out := make(binding, len(b))
		for k, v := range b {
			out[k] = v
		}
		return visit(out)
	}
	p := t.parts[i]
	if p.kind == literal {
		if !strings.HasPrefix(rest, p.text) {
			return true
		}
		return t.bind(i+1, rest[len(p.text):], b, visit)
	}
	// The value ends where the next literal starts, or at the end.
	var ends []int
	switch {
	case i+1 == len(t.parts):
		ends = []int{len(rest)}
	case t.parts[i+1].kind == literal:
		next := t.parts[i+1].text
		for from := 0; from <= len(rest); {
			j := strings.Index(rest[from:], next)
			if j < 0 {
				break
			}
			ends = append(ends, from+j)
			from += j + 1
		}
	default:
		// Two placeholders side by side: try every split.
		for j := 1; j < len(rest); j++ {
			ends = append(ends, j)
		}
	}
	for _, end := range ends {
		v := rest[:end]
		if v == "" && p.kind != phSuffix || p.kind == phRegistry && strings.Contains(v, "/") {
			continue
		}
		if prev, ok := b[p.kind]; ok && prev != v {
			continue
		}
		_, had := b[p.kind]
		b[p.kind] = v
		goOn := t.bind(i+1, rest[end:], b, visit)
		if !had {
			delete(b, p.kind)
		}
		if !goOn {
			return false
		}
	}
	return true
}
