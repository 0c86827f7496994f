package config

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Validate checks every value of c and reports every problem, not just the
// first: the result joins one *FieldError per problem, each with its key
// path and reason, in schema order. It returns nil for a valid config.
//
// Validate checks what can be checked without compiling: CEL conditions and
// rule collisions are checked when the rules are compiled.
func (c *Config) Validate() error {
	p := c.validate()
	if len(p) == 0 {
		return nil
	}
	errs := make([]error, len(p))
	for i, e := range p {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Allowed values of the enumerations, in the order error messages list them.
var (
	modes        = []Mode{ModeEnforce, ModeWarn, ModeAudit}
	actions      = []Action{ActionSwap, ActionKeep, ActionDeny}
	swapPolicies = []SwapPolicy{SwapExists, SwapWait, SwapAlways}
	providers    = []string{"trivy", "grype"}
)

func (c *Config) validate() problems {
	var p problems
	for i, r := range c.SourceRegistries {
		p.registryPattern(index("sourceRegistries", i), r)
	}
	if c.TargetRegistry != "" {
		p.targetRegistry("targetRegistry", c.TargetRegistry)
	} else if users := c.targetUsers(); len(users) > 0 {
		p.add("targetRegistry", "required: used by %s; set it to the mirror registry, e.g. registry.example.com", strings.Join(users, " and "))
	}
	checkEnum(&p, "mode", c.Mode, modes)
	c.validateMirroring(&p)
	c.validateScanning(&p)
	for i, pat := range c.Policies.AllowList {
		p.imagePattern(index("policies.allowList", i), pat)
	}
	for i, pat := range c.Policies.DenyList {
		p.imagePattern(index("policies.denyList", i), pat)
	}
	checkEnum(&p, "policies.mode", c.Policies.Mode, modes)
	names := map[string]int{}
	for i := range c.Rules {
		c.validateRule(&p, i, names)
	}
	for i, ns := range c.Namespaces.Exclude {
		p.namespacePattern(index("namespaces.exclude", i), ns)
	}
	for i, ns := range c.Namespaces.Include {
		p.namespacePattern(index("namespaces.include", i), ns)
	}
	for i, k := range c.Workloads.Custom {
		validateCustomKind(&p, index("workloads.custom", i), k)
	}
	c.validateRegistries(&p)
	c.validateStore(&p)
	c.validateSync(&p)
	return p
}

// targetUsers lists what needs targetRegistry: sourceRegistries while
// swapping is on, and swap rules whose target uses {target} (their template
// cannot be compiled without it, swapping or not).
func (c *Config) targetUsers() []string {
	var users []string
	if len(c.SourceRegistries) > 0 && c.SwapEnabled() {
		users = append(users, "sourceRegistries")
	}
	for i, r := range c.Rules {
		if r.EffectiveAction() == ActionSwap && strings.Contains(r.Target, "{target}") {
			users = append(users, index("rules", i)+".target")
		}
	}
	return users
}

func (c *Config) validateMirroring(p *problems) {
	m := c.Mirroring
	p.selector("mirroring.namespaceSelector", m.NamespaceSelector)
	p.selector("mirroring.objectSelector", m.ObjectSelector)
	checkEnum(p, "mirroring.swap", m.Swap, swapPolicies)
	if m.WaitBudget != nil {
		if d := m.WaitBudget.Duration; d <= 0 || d >= MaxWaitBudget {
			p.add("mirroring.waitBudget", "%s must be more than 0s and less than %s, the webhook timeout limit", d, MaxWaitBudget)
		}
	}
	if m.Concurrency < 0 || m.Concurrency > MaxConcurrency {
		p.add("mirroring.concurrency", "%d must be between 1 and %d (0 means the default, %d)", m.Concurrency, MaxConcurrency, DefaultConcurrency)
	}
	for _, ttl := range []struct {
		key string
		d   *metav1.Duration
	}{{"mirroring.presenceCache.positiveTTL", m.PresenceCache.PositiveTTL}, {"mirroring.presenceCache.negativeTTL", m.PresenceCache.NegativeTTL}} {
		if ttl.d != nil && ttl.d.Duration < 0 {
			p.add(ttl.key, "%s must not be negative; 0s asks the registry at every admission", ttl.d.Duration)
		}
	}
}

func (c *Config) validateRule(p *problems, i int, names map[string]int) {
	r := c.Rules[i]
	path := index("rules", i)
	if r.Name != "" {
		if first, dup := names[r.Name]; dup {
			p.add(path+".name", "%q is already the name of rules[%d]; rule names must be unique", r.Name, first)
		} else {
			names[r.Name] = i
		}
	}

	var set []string
	for _, m := range []struct{ key, value string }{{"image", r.Image}, {"repository", r.Repository}, {"registry", r.Registry}} {
		if m.value != "" {
			set = append(set, m.key)
		}
	}
	if len(set) > 1 {
		p.add(path, "sets %s; a rule matches by at most one of image, repository and registry", strings.Join(set, " and "))
	}
	switch {
	case r.Image != "":
		p.exactImage(path+".image", r.Image)
	case r.Repository != "":
		p.repositoryPattern(path+".repository", r.Repository)
	}
	if r.Registry != "" {
		p.registryPattern(path+".registry", r.Registry)
	}

	checkEnum(p, path+".action", r.Action, actions)
	checkEnum(p, path+".mode", r.Mode, modes)
	switch action := r.EffectiveAction(); action {
	case "":
		p.add(path+".target", "required: give a target to swap to, or set action to keep or deny")
	case ActionSwap:
		if r.Target == "" {
			p.add(path+".target", "required when action is swap")
		} else {
			p.template(path+".target", r)
		}
	case ActionKeep, ActionDeny:
		if r.Target != "" {
			p.add(path+".target", "only used when action is swap, but action is %s", action)
		}
	}
	if a := r.EffectiveAction(); a != ActionDeny && slices.Contains(actions, a) {
		if r.Message != "" {
			p.add(path+".message", "only used when action is deny, but action is %s", a)
		}
		if r.Mode != "" {
			p.add(path+".mode", "only used when action is deny, but action is %s", a)
		}
	}
	p.selector(path+".namespaceSelector", r.NamespaceSelector)
	p.selector(path+".objectSelector", r.ObjectSelector)
}

// placeholderNames are the names a target template may use, in the order
// error messages list them.
var placeholderNames = []string{"target", "registry", "repository", "image", "suffix"}

// template checks a swap rule's target template: balanced braces, known
// placeholders, {suffix} only for repository rules, and that it renders a
// valid reference for a sample image.
func (p *problems) template(path string, r Rule) {
	t := r.Target
	var sample strings.Builder
	// hostKnown: the text before the first per-image placeholder names a
	// registry host; what a rule produced is recognised by that prefix.
	hostKnown, perImage := false, false
	rest := t
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			sample.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			p.add(path, "%q has a '}' without a matching '{'", t)
			return
		}
		sample.WriteString(rest[:open])
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			p.add(path, "%q has a '{' without a matching '}'", t)
			return
		}
		name := rest[open+1 : open+1+end]
		rest = rest[open+1+end+1:]
		if name != "target" && !perImage {
			perImage = true
			hostKnown = strings.Contains(sample.String(), "/")
		}
		switch name {
		case "target":
			sample.WriteString("registry.example.com")
		case "registry":
			sample.WriteString("docker.io")
		case "repository":
			sample.WriteString("library/nginx")
		case "image":
			sample.WriteString("docker.io/library/nginx")
		case "suffix":
			if r.Repository == "" {
				p.add(path, "%q uses {suffix}, which only rules with a repository pattern define", t)
				return
			}
			sample.WriteString(sampleSuffix(r.Repository))
		default:
			p.add(path, "%q uses the unknown placeholder {%s}; allowed are {%s}", t, strings.Trim(strconv.Quote(name), `"`), strings.Join(placeholderNames, "}, {"))
			return
		}
	}
	rendered := sample.String()
	if strings.Contains(rendered, "://") {
		p.add(path, "%q must not include a scheme; write the registry host first", t)
		return
	}
	if perImage && !hostKnown {
		p.add(path, "%q must begin with a registry host and a '/', e.g. \"{target}/...\" or \"registry.example.com/...\"", t)
		return
	}
	if hasTagOrDigest(rendered) {
		if r.Image == "" {
			p.add(path, "%q names a tag or digest; only exact-image rules may, other rules keep the original's", t)
			return
		}
	} else {
		rendered += ":1.0"
	}
	if _, err := reference.Parse(rendered); err != nil {
		p.add(path, "%q does not render a valid image reference (it gives %q for a sample image: %s)", t, rendered, reason(err))
	}
}

// sampleSuffix returns what {suffix} could be for a name matching the
// repository pattern: the pattern after its literal prefix, with wildcards
// filled in.
func sampleSuffix(pattern string) string {
	p := reference.NormalizePattern(pattern)
	i := strings.IndexAny(p, "*?")
	if i < 0 {
		return ""
	}
	return strings.NewReplacer("*", "x", "?", "x").Replace(p[i:])
}

// hasTagOrDigest reports whether a reference string names a tag or digest.
func hasTagOrDigest(s string) bool {
	if strings.Contains(s, "@") {
		return true
	}
	return strings.Contains(s[strings.LastIndexByte(s, '/')+1:], ":")
}

// exactImage checks the image of an exact-image rule.
func (p *problems) exactImage(path, s string) {
	if strings.ContainsAny(s, "*?") {
		p.add(path, "%q contains a wildcard; an image rule matches one exact reference, use repository for patterns", s)
		return
	}
	if _, err := reference.Parse(s); err != nil {
		p.add(path, "%q: %s", s, reason(err))
	}
}

// imagePattern checks a wildcard over image references or repositories
// (allowList, denyList, rules[].repository).
func (p *problems) imagePattern(path, s string) {
	if !p.patternText(path, s) {
		return
	}
	if _, err := glob.Compile(s); err != nil {
		p.add(path, "%v", err)
	}
}

// repositoryPattern checks a rule's repository pattern, which matches
// names: a tag or digest in it would never match.
func (p *problems) repositoryPattern(path, s string) {
	last := strings.LastIndexByte(s, '/')
	if strings.Contains(s, "@") || last >= 0 && strings.Contains(s[last+1:], ":") {
		p.add(path, "%q names a tag or digest, but repository patterns match names without them; use image for one exact reference", s)
		return
	}
	p.imagePattern(path, s)
}

// registryPattern checks a registry host or host wildcard
// (sourceRegistries, rules[].registry).
func (p *problems) registryPattern(path, s string) {
	if !p.patternText(path, s) {
		return
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		p.add(path, "%q must be a registry host without a scheme; write %q instead of %s://", s, rest, scheme)
		return
	}
	if host, _, ok := strings.Cut(s, "/"); ok {
		p.add(path, "%q must be a registry host without a path; to match only part of a registry, add a rule with repository: %q", s, host+"/*")
		return
	}
	// Wildcards stand for host characters; check the rest as a host.
	if _, err := reference.ParseRegistry(strings.NewReplacer("*", "x", "?", "x").Replace(s)); err != nil {
		p.add(path, "%q: %s", s, reason(err))
		return
	}
	if _, err := glob.Compile(s); err != nil {
		p.add(path, "%v", err)
	}
}

// targetRegistry checks targetRegistry: host[:port][/path], no scheme,
// no tag, no digest, no wildcard.
func (p *problems) targetRegistry(path, s string) {
	if i := indexSpace(s); i >= 0 {
		p.add(path, "%q must not contain whitespace", s)
		return
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		p.add(path, "%q must not include a scheme; write %q instead of %s://", s, rest, scheme)
		return
	}
	if strings.Contains(s, "@") {
		p.add(path, "%q must not include a digest; it is a registry host with an optional path", s)
		return
	}
	if strings.ContainsAny(s, "*?") {
		p.add(path, "%q must not contain wildcards; it is the one registry images are swapped to", s)
		return
	}
	host, repoPath, hasPath := strings.Cut(s, "/")
	if _, err := reference.ParseRegistry(host); err != nil {
		p.add(path, "%q: %s", s, reason(err))
		return
	}
	if !hasPath {
		return
	}
	if strings.Contains(repoPath, ":") {
		p.add(path, "%q must not include a tag; it is a registry host with an optional path", s)
		return
	}
	if _, err := reference.Parse(host + "/" + repoPath + "/x"); err != nil {
		p.add(path, "%q has an invalid path: %s", s, reason(err))
	}
}

// namespacePattern checks a namespace name or wildcard.
func (p *problems) namespacePattern(path, s string) {
	if !p.patternText(path, s) {
		return
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '*' || c == '?') {
			p.add(path, "%q is not a namespace name or wildcard (lowercase letters, digits, '-', '*' and '?')", s)
			return
		}
	}
	if _, err := glob.Compile(s); err != nil {
		p.add(path, "%v", err)
	}
}

// patternText checks what every pattern must satisfy and reports whether
// s passed.
func (p *problems) patternText(path, s string) bool {
	switch {
	case s == "":
		p.add(path, "must not be empty")
	case indexSpace(s) >= 0:
		p.add(path, "%q: pattern must not contain whitespace", s)
	default:
		return true
	}
	return false
}

// selector checks a label selector, element by element so that the path
// names the offending label or expression.
func (p *problems) selector(path string, s *metav1.LabelSelector) {
	if s == nil {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		one := &metav1.LabelSelector{MatchLabels: map[string]string{k: s.MatchLabels[k]}}
		if _, err := metav1.LabelSelectorAsSelector(one); err != nil {
			p.add(field(path+".matchLabels", k), "%v", err)
		}
	}
	for i, e := range s.MatchExpressions {
		one := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{e}}
		if _, err := metav1.LabelSelectorAsSelector(one); err != nil {
			p.add(index(path+".matchExpressions", i), "%v", err)
		}
	}
}

func validateCustomKind(p *problems, path string, k CustomKind) {
	if k.Kind == "" {
		p.add(path+".kind", "required: a regular expression over the object's kind, e.g. SparkApplication")
	} else {
		p.regexp(path+".kind", k.Kind)
	}
	if k.APIVersion != "" {
		p.regexp(path+".apiVersion", k.APIVersion)
	}
	if len(k.Images) == 0 {
		p.add(path+".images", "required: at least one JSONPath expression, e.g. {.spec.image}")
	}
	for i, img := range k.Images {
		if strings.TrimSpace(img) == "" {
			p.add(index(path+".images", i), "must not be empty; write a JSONPath expression, e.g. {.spec.image}")
		}
	}
}

func (p *problems) regexp(path, s string) {
	if _, err := regexp.Compile(`^(?:` + s + `)$`); err != nil {
		p.add(path, "%q is not a valid regular expression: %s", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

// checkEnum reports v at path unless it is empty or one of allowed.
func checkEnum[T ~string](p *problems, path string, v T, allowed []T) {
	if v == "" || slices.Contains(allowed, v) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	p.add(path, "%q is not one of %s", string(v), strings.Join(names, ", "))
}

// reason returns the explanation of a reference error without repeating
// the input, which the caller already quotes.
func reason(err error) string {
	var re *reference.Error
	if errors.As(err, &re) {
		return re.Reason
	}
	return err.Error()
}

func indexSpace(s string) int {
	return strings.IndexFunc(s, unicode.IsSpace)
}
