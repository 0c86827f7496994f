package importer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// ImageSwap translates an ImageSwap (github.com/phenixblue/imageswap-webhook)
// MAPS file into an image-swapper configuration.
//
// The semantics are those of ImageSwap v1.5.3 (app/imageswap/imageswap.py at
// commit b596f22, swap_image L265-386), which decides in this order:
//
//  1. [EXACT]image::target — the image string exactly as written (L300-303);
//  2. [REPLACE]pattern::prefix — the first fnmatch pattern, in file order,
//     that matches the image as written; the result is prefix joined with the
//     last path component of the image, tag included (L306-310);
//  3. without a "default" key, nothing else happens (L324-326);
//  4. the registry's map: the registry is the first path component if it
//     contains '.', else docker.io; "host" also serves "host:port" images
//     that have no map of their own (L315-321); "docker.io/library" serves
//     images written without any '/' (L333-346). An empty value keeps the
//     image (L349), a value ending in '-' is prepended to the image
//     (L353-357), any other value replaces the registry (L359-363);
//  5. noswap_wildcards: comma-separated substrings of the image (L329-330,
//     L368-371);
//  6. the default map, with the same three kinds of value (L373-386).
//
// [EXACT] maps become exact-image rules; [REPLACE] maps, registry maps and
// noswap_wildcards become repository rules, in ImageSwap's order, because
// image-swapper's tiers put repository rules before registry rules while
// ImageSwap lets registry maps win over noswap_wildcards. The exceptions are
// the docker.io map, whose main rule is a registry rule (see
// translateHubKey), and the default, which becomes registry and default
// rules or sourceRegistries. Findings say where the result differs from
// ImageSwap's.
func ImageSwap(maps []byte) (*config.Config, []Finding, error) {
	fs := &findings{source: "MAPS"}
	f, err := parseMaps(maps, fs)
	if err != nil {
		return nil, nil, err
	}
	t := &mapsTranslator{f: f, fs: fs}
	cfg := t.translate()
	if err := checkCompiles(cfg); err != nil {
		return nil, nil, fmt.Errorf("importer: the translated MAPS file does not compile, which is a bug in the importer: %w", err)
	}
	return cfg, fs.sorted(), nil
}

// plannedRule is a rule with the MAPS line it came from. A swap rule whose
// target is base + "/" + something that drops the source registry falls
// back to base + "/{image}" when another rule could send images to the same
// names; see dedupeTargets.
type plannedRule struct {
	rule  config.Rule
	line  int
	input string
	base  string
	// srcReg is the one source registry the rule's pattern pins, or "".
	srcReg string
}

// mapsTranslator holds the state of one translation.
type mapsTranslator struct {
	f  *mapsFile
	fs *findings
	// The rules, by the place ImageSwap gives them in its decision order.
	exact, replace, mapLibrary, mapDirect, mapPort, noswap, defLibrary, mapHub, defHub, defAny []plannedRule

	cfg config.Config
	// hubNote is set when Docker Hub matching matters, for the note on
	// ImageSwap's way of finding the registry.
	hubNote bool
}

func (t *mapsTranslator) translate() *config.Config {
	t.reportShadowed()
	t.translateExact()
	t.translateReplace()
	if def, ok := t.f.maps.get(mapsDefaultKey); ok {
		t.translateRegistryMaps()
		t.translateNoswap()
		t.translateDefault(def)
	} else {
		for _, e := range t.f.maps.entries() {
			t.fs.add(e.line, e.input, "ImageSwap ignores registry maps and noswap_wildcards when the file has no default entry; not imported (add \"default::\" to enable them without a default swap)")
		}
	}

	all := concat(t.exact, t.replace, t.mapLibrary, t.mapDirect, t.mapPort, t.noswap, t.defLibrary, t.mapHub, t.defHub, t.defAny)
	t.dedupeTargets(all)
	for _, p := range all {
		t.cfg.Rules = append(t.cfg.Rules, p.rule)
	}
	if t.swaps() {
		t.cfg.Mirroring.Swap = config.SwapAlways
		t.fs.add(0, "", "ImageSwap swaps without checking that the mirror has the image; imported as mirroring.swap: always, with which image-swapper also copies missing images into the mirror (set swap: exists to swap only images the mirror already has)")
		t.fs.add(0, "", "ImageSwap's deployment (not the MAPS file) limits it to namespaces labelled k8s.twr.io/imageswap=enabled and skips objects labelled k8s.twr.io/imageswap=disabled; image-swapper swaps in every namespace but kube-system and its own unless mirroring.namespaceSelector says otherwise, and has an opt-out label of its own (to keep ImageSwap's, set mirroring.namespaceSelector and mirroring.objectSelector)")
	}
	if t.hubNote {
		t.fs.add(0, "", "ImageSwap took a first path component without '.' for part of a Docker Hub name (to it, localhost:5000/app was a Docker Hub image) and index.docker.io for a registry of its own; image-swapper reads references as the kubelet does, so such images are matched by their real registry")
	}
	return &t.cfg
}

func concat(lists ...[]plannedRule) []plannedRule {
	var out []plannedRule
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// swaps reports whether the translation swaps anything.
func (t *mapsTranslator) swaps() bool {
	if len(t.cfg.SourceRegistries) > 0 {
		return true
	}
	for _, r := range t.cfg.Rules {
		if r.EffectiveAction() == config.ActionSwap {
			return true
		}
	}
	return false
}

// reportShadowed reports lines whose key a later line sets again: ImageSwap
// reads the file into dicts, so the last value wins.
func (t *mapsTranslator) reportShadowed() {
	for _, d := range []*mapsDict{t.f.exact, t.f.replace, t.f.maps} {
		for _, key := range d.order {
			last := d.last[key]
			for _, e := range d.shadowed[key] {
				t.fs.add(e.line, e.input, fmt.Sprintf("line %d sets the same key again and ImageSwap keeps only the last value; not imported", last.line))
			}
		}
	}
}

// ruleName names the rules of one MAPS line, so that explanations point
// back to it.
func ruleName(line int, suffix string) string {
	name := "imageswap-line-" + strconv.Itoa(line)
	if suffix != "" {
		name += "-" + suffix
	}
	return name
}

// --- [EXACT] -----------------------------------------------------------

func (t *mapsTranslator) translateExact() {
	seen := map[reference.Reference]int{}
	for _, e := range t.f.exact.entries() {
		ref, err := reference.Parse(e.key)
		if err != nil {
			t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap compares [EXACT] keys with images as written, and %q is not a valid image reference (%s), so no Pod can use it; not imported", e.key, refReason(err)))
			continue
		}
		if first, dup := seen[ref]; dup {
			t.fs.add(e.line, e.input, fmt.Sprintf("names the same image as line %d once normalised (%s); image-swapper matches normalised references, so line %d's mapping applies; not imported", first, ref, first))
			continue
		}
		seen[ref] = e.line
		var notes []string
		r := config.Rule{Name: ruleName(e.line, ""), Image: e.key}
		switch {
		case e.val == "":
			// ImageSwap sets the image to "", which the API server rejects.
			r.Action = config.ActionDeny
			r.Message = "imported from ImageSwap: this image was mapped to an empty image name, which Kubernetes rejects"
			notes = append(notes, "ImageSwap swaps this image to an empty name, so the API server rejects the object; imported as a deny rule")
		default:
			if _, err := reference.Parse(e.val); err != nil {
				t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap would swap to %q, which is not a valid image reference (%s); not imported", e.val, refReason(err)))
				continue
			}
			// A target without tag or digest means :latest to the
			// kubelet; saying so keeps image-swapper from appending the
			// original tag.
			r.Target = e.val
			if !hasTagOrDigest(e.val) {
				r.Target += ":" + reference.DefaultTag
			}
		}
		if n := spellingNote(e.key, ref); n != "" {
			notes = append(notes, n)
		}
		if !t.valid(e, r) {
			continue
		}
		if len(notes) > 0 {
			t.fs.add(e.line, e.input, joinReasons(notes))
		}
		t.exact = append(t.exact, plannedRule{rule: r, line: e.line, input: e.input})
	}
}

// spellingNote explains, for an image written as key, that image-swapper
// also matches other spellings of the same image; "" when there are none.
func spellingNote(key string, ref reference.Reference) string {
	if ref.Registry != reference.DefaultRegistry && hasTagOrDigest(key) {
		return ""
	}
	return fmt.Sprintf("image-swapper matches every spelling of %s, while ImageSwap matched only the string %q as written", ref, key)
}

// --- [REPLACE] ---------------------------------------------------------

func (t *mapsTranslator) translateReplace() {
	for _, e := range t.f.replace.entries() {
		p, notes, reason := replaceRule(e)
		if reason != "" {
			t.fs.add(e.line, e.input, reason)
			continue
		}
		if !t.valid(e, p.rule) {
			continue
		}
		if len(notes) > 0 {
			t.fs.add(e.line, e.input, joinReasons(notes))
		}
		t.replace = append(t.replace, p)
	}
}

// replaceRule translates one [REPLACE] line. ImageSwap matches the pattern
// against the image as written, tag included, and rewrites the image to
// os.path.join(replacement, last path component) (L306-310). reason is set
// when the line cannot be imported at all.
//
// The rule's repository glob is what the pattern says about the name, up to
// a '*' that may run on into the tag; where that is not all the pattern
// says, a CEL condition applies the whole pattern, as a regular expression,
// to the normalised reference.
func replaceRule(e *mapsEntry) (p plannedRule, notes []string, reason string) {
	pat, repl := e.key, e.val
	if pat == "" {
		return p, nil, "an empty [REPLACE] pattern matches no image; not imported"
	}
	base, ok := replaceBase(repl)
	if !ok {
		return p, nil, fmt.Sprintf("ImageSwap would swap matching images to %q followed by their name, which is not a valid image reference; not imported", strings.TrimSuffix(repl, "/")+"/…")
	}
	namePat, tagPat, digestPat := splitPatternTag(pat)
	if namePat == "" || strings.HasSuffix(namePat, "/") {
		return p, nil, fmt.Sprintf("the pattern %q matches no valid image name; not imported", pat)
	}
	p = plannedRule{line: e.line, input: e.input, base: base}
	p.rule.Name = ruleName(e.line, "")

	if !hasFnWildcard(pat) {
		// One image: an exact-image rule with its own target tag.
		hub := patternPlace(namePat) == placeHub
		name := namePat
		if hub {
			name = hubPath(namePat)
		}
		tag := tagPat
		if tag == "" && digestPat == "" {
			tag = reference.DefaultTag
		}
		image := name
		if tag != "" {
			image += ":" + tag
		}
		if digestPat != "" {
			image += "@" + digestPat
		}
		ref, err := reference.Parse(image)
		if err != nil {
			return p, nil, fmt.Sprintf("the pattern %q matches no valid image (%s); not imported", pat, refReason(err))
		}
		p.rule.Image = ref.String()
		p.rule.Target = base + "/" + lastSegment(ref.Repository)
		if tag != "" {
			p.rule.Target += ":" + tag
		}
		if digestPat != "" {
			p.rule.Target += "@" + digestPat
		}
		p.base = ""
		if n := spellingNote(pat, ref); n != "" {
			notes = append(notes, n)
		}
		return p, notes, ""
	}

	// The part of the pattern that certainly lies in the name: all of it
	// before the tag, or up to the first '*' of the last path component,
	// which may run on across the ':' (ubut*18.04 matches ubuntu:18.04).
	globPat := namePat
	if seg := lastSegment(namePat); tagPat == "" && digestPat == "" && strings.Contains(seg, "*") {
		globPat = namePat[:len(namePat)-len(seg)+strings.IndexByte(seg, '*')+1]
	}
	place := patternPlace(globPat)
	g, classes := fnmatchGlob(globPat)
	var rePrefix, reBody string
	switch place {
	case placeHub:
		notes = append(notes, "Docker Hub images are matched in their normalised form, so every spelling of a matching image (nginx, library/nginx, docker.io/library/nginx) matches, not only the one ImageSwap saw")
		path := hubPath(g)
		switch {
		case strings.Contains(path, "/"):
			g = reference.DefaultRegistry + "/" + path
		case strings.ContainsAny(path, "*?"):
			g = reference.DefaultRegistry + "/library/" + path
			notes = append(notes, fmt.Sprintf("only official images (docker.io/library/%s) are included; ImageSwap's pattern also matched user repositories such as %s/app", path, strings.NewReplacer("*", "x", "?", "x").Replace(path)))
		default:
			g = reference.DefaultRegistry + "/library/" + path
		}
		rePrefix, reBody = `docker\.io/(?:library/)?`, hubPath(pat)
	case placeAnywhere:
		notes = append(notes, "the pattern is matched against normalised references (docker.io/library/nginx:latest, not nginx), so a leading '*' also sees the registry, library/ and :latest parts that ImageSwap saw only when written out")
		reBody = pat
	default:
		reBody = pat
	}
	// The name's last component is kept whole in the target when the
	// name is literal or an official image's, which has only one.
	oneComponent := strings.HasPrefix(g, reference.DefaultRegistry+"/library/")
	if !strings.ContainsAny(g, "*?") {
		// A name without wildcard: the '*' gives {suffix} a place to start
		// (it stays empty), and the condition below keeps the name exact.
		g += "*"
		oneComponent = true
	}
	p.rule.Repository = g
	if classes || globPat != pat || !strings.HasSuffix(pat, "*") {
		// An image written without a tag has ":latest" in its normalised
		// reference, so the pattern may match without it.
		re := "^" + rePrefix + "(?s:" + fnmatchBody(reBody) + `)(?::latest)?\z`
		p.rule.Condition = "image.reference.matches(" + celString(re) + ")"
		if place == placeRegistry {
			notes = append(notes, "the pattern is applied to the normalised reference, in which an image written without a tag has :latest, so the pattern matches either way, where ImageSwap saw only what was written")
		}
	}

	lp := g
	if i := strings.IndexAny(g, "*?"); i >= 0 {
		lp = g[:i]
	}
	var tail string
	switch {
	case strings.Contains(lp, "/") && strings.ContainsAny(g, "*?"):
		tail = lastSegment(lp) + "{suffix}"
		p.srcReg, _, _ = strings.Cut(lp, "/")
		if !oneComponent {
			notes = append(notes, fmt.Sprintf("ImageSwap kept only the last path component of the image; image-swapper keeps all of the name after %q, which differs when the wildcard covers a '/'", lp))
		}
	default:
		tail = "{image}"
		notes = append(notes, "ImageSwap kept only the last path component of the image; since the pattern does not fix the registry, image-swapper keeps the whole source name ({image}) so that different sources stay apart")
	}
	p.rule.Target = base + "/" + tail
	return p, notes, ""
}

// replaceBase turns a [REPLACE] replacement into the literal start of the
// target. os.path.join adds the '/' unless the replacement ends with one; an
// empty replacement leaves just the last path component, a Docker Hub
// official image.
func replaceBase(repl string) (string, bool) {
	if repl == "" {
		return reference.DefaultRegistry + "/library", true
	}
	b := strings.TrimSuffix(repl, "/")
	if b == "" {
		return "", false
	}
	return canonicalTarget(b)
}

// splitPatternTag splits an fnmatch pattern over "name[:tag][@digest]" at
// the first ':' or '@' after its last '/'.
func splitPatternTag(pat string) (name, tag, digest string) {
	slash := strings.LastIndexByte(pat, '/')
	seg := pat[slash+1:]
	cut := strings.IndexAny(seg, ":@")
	if cut < 0 {
		return pat, "", ""
	}
	name, rest := pat[:slash+1+cut], seg[cut:]
	if rest[0] == '@' {
		return name, "", rest[1:]
	}
	tag, digest, _ = strings.Cut(rest[1:], "@")
	return name, tag, digest
}

// patternPlaceKind says where a [REPLACE] pattern's images live.
type patternPlaceKind int

const (
	placeRegistry patternPlaceKind = iota // the pattern starts with a registry host
	placeHub                              // a Docker Hub path, written short or under docker.io
	placeAnywhere                         // the pattern starts with '*': any registry
)

// patternPlace tells where the images a pattern matches live: it starts
// with a registry host (a first component with '.' or ':', or localhost),
// or with '*', or else it is a Docker Hub path, as written without registry.
func patternPlace(pat string) patternPlaceKind {
	if strings.HasPrefix(pat, "*") {
		return placeAnywhere
	}
	first, _, hasSlash := strings.Cut(pat, "/")
	switch {
	case !hasSlash:
		return placeHub
	case first == reference.DefaultRegistry || first == "index.docker.io":
		return placeHub
	case registryLike(first) && !strings.ContainsAny(first, "*?[") || strings.Contains(first, "."):
		return placeRegistry
	}
	return placeHub
}

// hubPath strips an explicit Docker Hub registry from a pattern.
func hubPath(pat string) string {
	for _, p := range []string{reference.DefaultRegistry + "/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(pat, p); ok {
			return rest
		}
	}
	return pat
}

// --- registry maps -----------------------------------------------------

// translateRegistryMaps translates the keys that name a registry, in the
// order of their lines.
func (t *mapsTranslator) translateRegistryMaps() {
	entries := t.f.maps.entries()
	sortByLine(entries)
	for _, e := range entries {
		switch {
		case e.key == mapsDefaultKey || e.key == mapsNoswapKey:
			continue
		case strings.HasSuffix(e.key, "/library"):
			t.translateLibraryKey(e)
		default:
			t.translateRegistryKey(e)
		}
	}
}

func sortByLine(es []*mapsEntry) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].line < es[j-1].line; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// neverMatches says why a registry key can never be chosen by ImageSwap,
// or "" when it can.
func neverMatches(key string) string {
	upper := strings.ToUpper(key)
	switch {
	case key == "":
		return "an empty key matches no registry; not imported"
	case strings.HasPrefix(upper, mapsExactPrefix) || strings.HasPrefix(upper, mapsReplPrefix):
		return "ImageSwap's [EXACT] and [REPLACE] prefixes are case-sensitive, so it reads this line as a registry key, which never matches; not imported"
	case strings.Contains(key, "/"):
		return "ImageSwap looks up registry keys by the registry alone (or registry/library), so a key with a path never matches; not imported (a [REPLACE] map can match by path)"
	case !strings.Contains(key, "."):
		return "ImageSwap takes a first path component for a registry only when it contains '.', so this key never matches; not imported"
	case key == "index.docker.io":
		return "ImageSwap applies this key only to images written as index.docker.io/…, which image-swapper reads as docker.io; not imported (a docker.io key covers them)"
	}
	if _, err := reference.ParseRegistry(key); err != nil {
		return fmt.Sprintf("%q is not a registry host (%s), so ImageSwap never matches it; not imported", key, refReason(err))
	}
	return ""
}

// mapBase returns the literal start of the target of a registry map whose
// value is val, for images of host (the key without its port): a value
// ending in '-' is prepended to the image, registry included (L353-357);
// any other value takes the place of the registry (L359-363).
func mapBase(val, host string) (string, bool) {
	if strings.HasSuffix(val, "-") {
		return canonicalTarget(val + host)
	}
	return canonicalTarget(val)
}

func (t *mapsTranslator) translateRegistryKey(e *mapsEntry) {
	if why := neverMatches(e.key); why != "" {
		t.fs.add(e.line, e.input, why)
		return
	}
	host, _, hasPort := strings.Cut(e.key, ":")
	if e.key == reference.DefaultRegistry {
		t.translateHubKey(e)
		return
	}
	var notes []string
	direct := plannedRule{line: e.line, input: e.input, srcReg: e.key}
	direct.rule = config.Rule{Name: ruleName(e.line, ""), Repository: e.key + "/*"}
	if e.val == "" {
		direct.rule.Action = config.ActionKeep
	} else {
		base, ok := mapBase(e.val, host)
		if !ok {
			t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap would swap images of %s to names starting with %q, which are not valid image references; not imported", e.key, e.val))
			return
		}
		direct.base = base
		direct.rule.Target = base + "/{suffix}"
		if hasPort && strings.HasSuffix(e.val, "-") {
			notes = append(notes, fmt.Sprintf("ImageSwap dropped the port and every path component but the last (%s/team/app became %s%s/app); image-swapper keeps the path (%s/team/app)", e.key, e.val, host, base))
		}
	}
	if !t.valid(e, direct.rule) {
		return
	}
	t.mapDirect = append(t.mapDirect, direct)
	if !hasPort {
		t.portCompanion(e, direct, &notes)
	}
	if len(notes) > 0 {
		t.fs.add(e.line, e.input, joinReasons(notes))
	}
}

// translateHubKey translates the docker.io key. ImageSwap swaps Docker Hub
// images as written: nginx becomes VALUE/nginx, but docker.io/library/nginx
// becomes VALUE/library/nginx; image-swapper sees one normalised name, so
// the translation follows the short spelling, which is the usual one.
//
// The main rule is a registry rule: as a repository rule its target would
// read exactly like the official images' rule, which image-swapper refuses
// as a possible collision. noswap_wildcards rules then must not apply to
// Docker Hub images; see translateNoswap.
func (t *mapsTranslator) translateHubKey(e *mapsEntry) {
	t.hubNote = true
	if e.val == "" {
		keep := plannedRule{line: e.line, input: e.input}
		keep.rule = config.Rule{Name: ruleName(e.line, ""), Repository: reference.DefaultRegistry + "/*", Action: config.ActionKeep}
		if t.valid(e, keep.rule) {
			t.mapDirect = append(t.mapDirect, keep)
		}
		return
	}
	base, ok := mapBase(e.val, reference.DefaultRegistry)
	if !ok {
		t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap would swap Docker Hub images to names starting with %q, which are not valid image references; not imported", e.val))
		return
	}
	var notes []string
	if _, libraryMapped := t.f.maps.get(reference.DefaultRegistry + "/library"); !libraryMapped {
		lib := plannedRule{line: e.line, input: e.input, base: base, srcReg: reference.DefaultRegistry}
		lib.rule = config.Rule{Name: ruleName(e.line, "library"), Repository: reference.DefaultRegistry + "/library/*", Target: base + "/{suffix}"}
		if !t.valid(e, lib.rule) {
			return
		}
		t.mapLibrary = append(t.mapLibrary, lib)
		notes = append(notes, fmt.Sprintf("official images go to %s/nginx however they are written; ImageSwap sent docker.io/library/nginx and library/nginx to %s/library/nginx", base, base))
	}
	hub := plannedRule{line: e.line, input: e.input, base: base, srcReg: reference.DefaultRegistry}
	hub.rule = config.Rule{Name: ruleName(e.line, ""), Registry: reference.DefaultRegistry, Target: base + "/{repository}"}
	if !t.valid(e, hub.rule) {
		return
	}
	t.mapHub = append(t.mapHub, hub)
	if len(notes) > 0 {
		t.fs.add(e.line, e.input, joinReasons(notes))
	}
}

// portCompanion covers images of host:port, which ImageSwap's host key also
// serves (L315-321) when host:port has no key of its own. An empty value
// keeps them, which a rule says exactly. A swap value cannot be carried
// over: ImageSwap puts the value in place of the host and keeps the port
// (quay.io:443/app became mirror.example.com:443/app), and a target built
// from the source's port cannot be expressed; such images are left to the
// rules that follow, and the finding says so.
func (t *mapsTranslator) portCompanion(e *mapsEntry, direct plannedRule, notes *[]string) {
	if direct.rule.Action != config.ActionKeep {
		was := e.val + ":443/team/app"
		if strings.HasSuffix(e.val, "-") {
			was = e.val + e.key + "/app"
		}
		*notes = append(*notes, fmt.Sprintf("ImageSwap also used this map for %s with a port (%s:443/team/app became %s); image-swapper applies it to %s without a port only, so add a rule for %s:PORT/* if images name a port", e.key, e.key, was, e.key, e.key))
		return
	}
	port := plannedRule{line: e.line, input: e.input}
	port.rule = config.Rule{Name: ruleName(e.line, "port"), Repository: e.key + ":*/*", Action: config.ActionKeep}
	if t.valid(e, port.rule) {
		t.mapPort = append(t.mapPort, port)
	}
}

// translateLibraryKey translates REGISTRY/library. ImageSwap consults it
// only for images written without any '/', whose registry is always
// docker.io (L333-346). When REGISTRY itself has no key, the lookup of
// swap_maps[REGISTRY] fails with a KeyError for every other image of that
// registry, which fails the admission request (L349).
func (t *mapsTranslator) translateLibraryKey(e *mapsEntry) {
	reg := strings.TrimSuffix(e.key, "/library")
	_, regMapped := t.f.maps.get(reg)
	if reg != reference.DefaultRegistry {
		if regMapped || neverMatches(reg) != "" {
			t.fs.add(e.line, e.input, "ImageSwap uses a /library key only for images written without '/', which are always Docker Hub images, so this key is never used; not imported")
			return
		}
		keep := plannedRule{line: e.line, input: e.input}
		keep.rule = config.Rule{Name: ruleName(e.line, ""), Repository: reg + "/*", Action: config.ActionKeep}
		if t.valid(e, keep.rule) {
			t.mapDirect = append(t.mapDirect, keep)
			t.fs.add(e.line, e.input, fmt.Sprintf("this key is never used for swapping, but because %s has no key of its own, ImageSwap fails the admission request (KeyError) for every image of %s; image-swapper leaves them unswapped", reg, reg))
		}
		return
	}
	t.hubNote = true
	lib := plannedRule{line: e.line, input: e.input, srcReg: reference.DefaultRegistry}
	lib.rule = config.Rule{Name: ruleName(e.line, ""), Repository: reference.DefaultRegistry + "/library/*"}
	if e.val == "" {
		lib.rule.Action = config.ActionKeep
	} else {
		base, ok := mapBase(e.val, reference.DefaultRegistry)
		if !ok {
			t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap would swap official images to names starting with %q, which are not valid image references; not imported", e.val))
			return
		}
		lib.base = base
		lib.rule.Target = base + "/{suffix}"
	}
	if !t.valid(e, lib.rule) {
		return
	}
	t.mapLibrary = append(t.mapLibrary, lib)
	notes := []string{"image-swapper applies this to every spelling of an official image (nginx, library/nginx, docker.io/library/nginx); ImageSwap applied it only to names written without '/' and sent the other spellings through the docker.io map"}
	if !regMapped {
		keep := plannedRule{line: e.line, input: e.input}
		keep.rule = config.Rule{Name: ruleName(e.line, "other-docker-hub"), Repository: reference.DefaultRegistry + "/*", Action: config.ActionKeep}
		if t.valid(e, keep.rule) {
			t.mapDirect = append(t.mapDirect, keep)
			notes = append(notes, "because docker.io has no key of its own, ImageSwap fails the admission request (KeyError) for other Docker Hub images such as bitnami/redis; image-swapper leaves them unswapped")
		}
	}
	t.fs.add(e.line, e.input, joinReasons(notes))
}

// --- noswap_wildcards --------------------------------------------------

// translateNoswap translates noswap_wildcards: an image is kept when one of
// the comma-separated strings occurs anywhere in it, as written (L368).
func (t *mapsTranslator) translateNoswap() {
	e, ok := t.f.maps.get(mapsNoswapKey)
	if !ok || e.val == "" {
		return
	}
	var notes []string
	seen := map[string]bool{}
	for i, w := range strings.Split(e.val, ",") {
		if seen[w] {
			continue
		}
		seen[w] = true
		r := config.Rule{Name: ruleName(e.line, "noswap-"+strconv.Itoa(i+1)), Repository: "*" + w + "*", Action: config.ActionKeep}
		if len(t.mapHub) > 0 {
			// The docker.io map is a registry rule (see translateHubKey) and
			// must still win over noswap_wildcards, as in ImageSwap.
			r.Condition = "image.registry != " + celString(reference.DefaultRegistry)
		}
		switch {
		case w == "":
			r.Repository = "*"
			notes = append(notes, "an empty entry (as in \"a,,b\" or a trailing ',') is in every image, so ImageSwap never reaches the default map; kept as a rule that keeps every image")
		case strings.ContainsAny(w, ":@") && !portLike(w):
			// Aimed at a tag or digest, which repository names lack.
			r.Repository = "*"
			cond := "image.reference.contains(" + celString(w) + ")"
			if r.Condition != "" {
				cond = r.Condition + " && " + cond
			}
			r.Condition = cond
			notes = append(notes, fmt.Sprintf("%q is looked for in the normalised reference, which has :latest where an image was written without a tag", w))
		default:
			notes = append(notes, noswapNotes(w)...)
		}
		if !t.valid(e, r) {
			continue
		}
		t.noswap = append(t.noswap, plannedRule{rule: r, line: e.line, input: e.input})
	}
	if len(notes) > 0 {
		t.fs.add(e.line, e.input, joinReasons(notes))
	}
}

// noswapNotes says how matching w against normalised repository names
// (image-swapper) differs from finding it in the image as written
// (ImageSwap).
func noswapNotes(w string) []string {
	var notes []string
	if strings.ContainsAny(w, "*?") {
		notes = append(notes, fmt.Sprintf("in %q, ImageSwap took '*' and '?' literally; image-swapper takes them as wildcards", w))
	}
	if !strings.ContainsAny(w, "./:") {
		notes = append(notes, fmt.Sprintf("ImageSwap also found %q in tags; image-swapper looks only at repository names", w))
	}
	const hubParts = "index.docker.io/library/"
	if strings.Contains(hubParts, w) || strings.Contains(w, "docker.io") || strings.Contains(w, "library/") {
		notes = append(notes, fmt.Sprintf("image-swapper matches %q against normalised names, which always spell out docker.io/library/ for official images", w))
	}
	return notes
}

// portLike reports whether every ':' in w starts a registry port: digits up
// to a '/' or the end ("harbor.local:8443", "local:5000/team").
func portLike(w string) bool {
	if strings.Contains(w, "@") {
		return false
	}
	for i := 0; i < len(w); i++ {
		if w[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(w) && '0' <= w[j] && w[j] <= '9' {
			j++
		}
		if j == i+1 || j < len(w) && w[j] != '/' {
			return false
		}
	}
	return true
}

// --- default -----------------------------------------------------------

// translateDefault translates the default map (L373-386): an empty value
// keeps images, a value ending in '-' is prepended to REGISTRY/IMAGE, and
// any other value takes the place of the registry.
func (t *mapsTranslator) translateDefault(e *mapsEntry) {
	if e.val == "" {
		return
	}
	t.hubNote = true
	_, hubMapped := t.f.maps.get(reference.DefaultRegistry)
	_, libMapped := t.f.maps.get(reference.DefaultRegistry + "/library")
	var notes []string
	dash := strings.HasSuffix(e.val, "-")

	hubBase, ok := canonicalTarget(e.val)
	if dash {
		hubBase, ok = canonicalTarget(e.val + reference.DefaultRegistry)
	}
	if ok {
		_, ok = canonicalTarget(hubBase + "/x")
	}
	if !ok {
		t.fs.add(e.line, e.input, fmt.Sprintf("ImageSwap would swap images to names starting with %q, which are not valid image references; not imported", e.val))
		return
	}
	if !hubMapped && !libMapped {
		lib := plannedRule{line: e.line, input: e.input, base: hubBase, srcReg: reference.DefaultRegistry}
		lib.rule = config.Rule{Name: ruleName(e.line, "library"), Repository: reference.DefaultRegistry + "/library/*", Target: hubBase + "/{suffix}"}
		hub := plannedRule{line: e.line, input: e.input, base: hubBase, srcReg: reference.DefaultRegistry}
		hub.rule = config.Rule{Name: ruleName(e.line, "docker-hub"), Registry: reference.DefaultRegistry, Target: hubBase + "/{repository}"}
		if t.valid(e, lib.rule) && t.valid(e, hub.rule) {
			t.defLibrary = append(t.defLibrary, lib)
			t.defHub = append(t.defHub, hub)
			if dash {
				notes = append(notes, fmt.Sprintf("Docker Hub images written in full went to %sdocker.io/docker.io/… with ImageSwap; image-swapper sends every spelling where the short one went (%s/nginx, %s/bitnami/redis)", e.val, hubBase, hubBase))
			} else {
				notes = append(notes, fmt.Sprintf("official images go to %s/nginx however they are written; ImageSwap sent docker.io/library/nginx to %s/library/nginx", hubBase, hubBase))
			}
		}
	}

	if dash {
		// ImageSwap: VALUE + registry-without-port + "/" + image as
		// written, registry included (L381-382).
		if !strings.Contains(e.val, "/") {
			notes = append(notes, fmt.Sprintf("for other registries, ImageSwap swapped to a registry host named after the source (quay.io/team/app became %squay.io/quay.io/team/app), which image-swapper cannot express; they are not swapped", e.val))
		} else {
			b, ok := canonicalTarget(e.val + "x")
			r := config.Rule{Name: ruleName(e.line, ""), Target: strings.TrimSuffix(b, "x") + "{registry}/{image}"}
			if !ok {
				notes = append(notes, fmt.Sprintf("ImageSwap swapped images of other registries to %sREGISTRY/REGISTRY/IMAGE, which is not a valid reference; they are not swapped", e.val))
			} else if t.valid(e, r) {
				t.defAny = append(t.defAny, plannedRule{rule: r, line: e.line, input: e.input})
				notes = append(notes, fmt.Sprintf("for registries with a port, ImageSwap produced an invalid reference (%sregistry.local/registry.local:5000/app); image-swapper writes the port as _5000 (%sregistry.local_5000/registry.local_5000/app)", e.val, e.val))
			}
		}
	} else {
		target, _ := canonicalTarget(e.val)
		t.cfg.TargetRegistry = target
		t.cfg.SourceRegistries = []string{"*"}
		if !t.validConfig(e) {
			t.cfg.TargetRegistry, t.cfg.SourceRegistries = "", nil
			return
		}
		notes = append(notes, fmt.Sprintf("ImageSwap replaced the registry of other images with %s (quay.io/team/app became %s/team/app, so images of different registries could collide); image-swapper keeps the source registry in the path: %s/quay.io/team/app", e.val, target, target))
	}
	if len(notes) > 0 {
		t.fs.add(e.line, e.input, joinReasons(notes))
	}
}

// --- shared ------------------------------------------------------------

// valid checks one rule against the configuration schema before it is
// added; a rule that fails is reported on its line instead.
func (t *mapsTranslator) valid(e *mapsEntry, r config.Rule) bool {
	c := config.Config{Rules: []config.Rule{r}}
	if err := c.Validate(); err != nil {
		t.fs.add(e.line, e.input, fmt.Sprintf("cannot be expressed as a valid rule (%v); not imported", oneLine(err)))
		return false
	}
	return true
}

// validConfig checks the top-level keys set so far.
func (t *mapsTranslator) validConfig(e *mapsEntry) bool {
	c := config.Config{TargetRegistry: t.cfg.TargetRegistry, SourceRegistries: t.cfg.SourceRegistries}
	if err := c.Validate(); err != nil {
		t.fs.add(e.line, e.input, fmt.Sprintf("cannot be expressed as a valid configuration (%v); not imported", oneLine(err)))
		return false
	}
	return true
}

// dedupeTargets keeps swap rules that drop the source registry from
// sending images of different registries to the same names, which
// image-swapper refuses and ImageSwap allows: a rule whose target reads
// like an earlier one's, or starts like one for another registry, keeps the
// whole source name instead. Rules are checked in precedence order, as
// rules.Compile does.
func (t *mapsTranslator) dedupeTargets(all []plannedRule) {
	type owner struct {
		reg  string
		line int
	}
	byTarget := map[string]int{}
	byBase := map[string]owner{}
	for tier := 0; tier < 4; tier++ {
		for i := range all {
			p := &all[i]
			r := &p.rule
			if ruleTier(*r) != tier || p.base == "" || r.EffectiveAction() != config.ActionSwap ||
				strings.Contains(r.Target, "{registry}") || strings.Contains(r.Target, "{image}") {
				continue
			}
			other, clash := byTarget[r.Target]
			if o, ok := byBase[p.base]; !clash && ok && (o.reg != p.srcReg || p.srcReg == "") {
				other, clash = o.line, true
			}
			if !clash {
				byTarget[r.Target] = p.line
				if _, ok := byBase[p.base]; !ok {
					byBase[p.base] = owner{p.srcReg, p.line}
				}
				continue
			}
			r.Target = p.base + "/{image}"
			t.fs.add(p.line, p.input, fmt.Sprintf("sends images to the same names as line %d, so images of different sources could collide; image-swapper keeps the whole source name in the path (%s)", other, r.Target))
		}
	}
	t.dedupeProducts(all)
}

// dedupeProducts settles the collisions that only comparing what targets
// produce finds (rules.Compile's check): of two rules that send different
// images to one name, the later in precedence keeps the whole source name.
func (t *mapsTranslator) dedupeProducts(all []plannedRule) {
	byName := map[string]int{}
	for i, p := range all {
		byName[p.rule.Name] = i
	}
	for range all {
		cfg := t.cfg
		cfg.Rules = nil
		for _, p := range all {
			cfg.Rules = append(cfg.Rules, p.rule)
		}
		var c *rules.Collision
		if _, err := rules.Compile(&cfg); !errors.As(err, &c) {
			return
		}
		i, ok := byName[c.B]
		if !ok || !t.keepWholeName(&all[i]) {
			if i, ok = byName[c.A]; !ok || !t.keepWholeName(&all[i]) {
				return // checkCompiles reports it
			}
		}
		p := all[i]
		other := c.A
		if p.rule.Name == c.A {
			other = c.B
		}
		t.fs.add(p.line, p.input, fmt.Sprintf("sends images to the same names as %s (%s and %s would both become %s); image-swapper keeps the whole source name in the path (%s)", mapsLineOf(other, all), c.SourceA, c.SourceB, c.Target, p.rule.Target))
	}
}

// keepWholeName makes a swap rule keep the whole source name in its target;
// false when it cannot.
func (t *mapsTranslator) keepWholeName(p *plannedRule) bool {
	if p.base == "" || p.rule.EffectiveAction() != config.ActionSwap || strings.Contains(p.rule.Target, "{image}") {
		return false
	}
	p.rule.Target = p.base + "/{image}"
	return true
}

// mapsLineOf names the MAPS line of a translated rule, or the rule.
func mapsLineOf(name string, all []plannedRule) string {
	for _, p := range all {
		if p.rule.Name == name {
			return fmt.Sprintf("line %d", p.line)
		}
	}
	return name
}

// ruleTier is the precedence tier of a rule: 0 exact image, 1 repository,
// 2 registry, 3 default.
func ruleTier(r config.Rule) int {
	switch {
	case r.Image != "":
		return 0
	case r.Repository != "":
		return 1
	case r.Registry != "":
		return 2
	}
	return 3
}

// canonicalTarget writes the literal start of a target the way image-swapper
// normalises references, so that what a rule produces is recognised as
// swapped: a first component that is not a registry host is a Docker Hub
// path ("team/mirror" is docker.io/team/mirror). ok is false when the result
// cannot begin a valid reference.
func canonicalTarget(s string) (string, bool) {
	if s == "" || strings.ContainsAny(s, "{}") {
		return "", false
	}
	first, _, _ := strings.Cut(s, "/")
	if !registryLike(first) {
		s = reference.DefaultRegistry + "/" + s
	} else if first == "index.docker.io" {
		s = reference.DefaultRegistry + s[len(first):]
	}
	if _, err := reference.Parse(s + "/x:1"); err != nil {
		return "", false
	}
	return s, true
}

// registryLike reports whether the first component of a name is a registry
// host, as reference.Parse decides it.
func registryLike(first string) bool {
	if first == "localhost" {
		return true
	}
	return strings.ContainsAny(first, ".:") || strings.ToLower(first) != first
}

// hasTagOrDigest reports whether a reference string names a tag or digest.
func hasTagOrDigest(s string) bool {
	if strings.Contains(s, "@") {
		return true
	}
	return strings.Contains(s[strings.LastIndexByte(s, '/')+1:], ":")
}

func lastSegment(s string) string {
	return s[strings.LastIndexByte(s, '/')+1:]
}

// refReason extracts the reason from a reference error.
func refReason(err error) string {
	if re, ok := err.(*reference.Error); ok {
		return re.Reason
	}
	return err.Error()
}

// oneLine joins a multi-line (errors.Join) error into one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
