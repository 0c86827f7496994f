package report

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

// Options say what a report covers.
type Options struct {
	// Since is the start of the admission window; zero reads the whole
	// ledger. Copies and scans are read whole: the mirror and scan status
	// of an image is its newest, however old.
	Since time.Time
	// Namespace is a wildcard the namespaces must match; "" matches all.
	Namespace string
	// Scanning is the policy verdicts are computed with (the
	// configuration's security.scanning): stored findings are judged
	// again, so a changed threshold or exception shows at once.
	Scanning config.Scanning
	// Now is the report's time (default time.Now): verdicts drop ignore
	// entries expired by then, and exceptions expire relative to it.
	Now time.Time
}

// Build reads the ledger and builds the report. It streams what it reads:
// memory grows with the images, namespaces and days reported, not with
// the records.
func Build(ctx context.Context, st store.Store, opts Options) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC()
	policy, err := scan.NewPolicy(opts.Scanning)
	if err != nil {
		return nil, err
	}
	b := &builder{opts: opts, policy: policy, images: map[string]*imageAgg{}}
	q := store.Query{Since: opts.Since, Namespace: opts.Namespace}
	if err := st.AdmissionGroups(ctx, q, b.addGroup); err != nil {
		return nil, fmt.Errorf("reading admissions: %w", err)
	}
	b.fold()
	b.indexTargets()
	if err := st.CopySummaries(ctx, time.Time{}, b.addCopy); err != nil {
		return nil, fmt.Errorf("reading copies: %w", err)
	}
	b.index()
	if err := st.LatestScans(ctx, b.addScan); err != nil {
		return nil, fmt.Errorf("reading scans: %w", err)
	}
	if err := st.ScanSummaries(ctx, b.addScanEvent); err != nil {
		return nil, fmt.Errorf("reading scans: %w", err)
	}
	gaps, err := st.Gaps(ctx, opts.Since)
	if err != nil {
		return nil, fmt.Errorf("reading gaps: %w", err)
	}
	r := &Report{SchemaVersion: SchemaVersion, Generated: opts.Now, NamespaceFilter: opts.Namespace,
		Images: []Image{}, Namespaces: []Namespace{}, Trend: []Day{}, Exceptions: []Exception{}}
	if !opts.Since.IsZero() {
		since := opts.Since.UTC()
		r.Since = &since
	}
	for _, g := range gaps {
		r.LostRecords += g.Count
	}
	b.finish(r)
	return r, nil
}

// tally counts admission requests. Both webhooks record each Pod, so an
// image's admissions are the larger of its two endpoints' counts, not
// their sum; so are its denials: /mutate records the list and rule
// denials that /validate then enforces (and records again), and only
// /validate records the vulnerability gate's.
type tally struct {
	mutate, validate int64
	// denials and dry-run denials, per endpoint
	mutateDenials, validateDenials int64
	mutateDryRun, validateDryRun   int64
}

func (t tally) admissions() int64    { return max(t.mutate, t.validate) }
func (t tally) denials() int64       { return max(t.mutateDenials, t.validateDenials) }
func (t tally) dryRunDenials() int64 { return max(t.mutateDryRun, t.validateDryRun) }

// validateOnly is the part of t /validate recorded.
func (t tally) validateOnly() tally {
	return tally{validate: t.validate, validateDenials: t.validateDenials, validateDryRun: t.validateDryRun}
}

func (t *tally) add(o tally) {
	t.mutate += o.mutate
	t.validate += o.validate
	t.mutateDenials += o.mutateDenials
	t.validateDenials += o.validateDenials
	t.mutateDryRun += o.mutateDryRun
	t.validateDryRun += o.validateDryRun
}

// ruleDenials counts one rule's denials per endpoint, [mutate, validate].
type ruleDenials map[string]*[2]int64

func (r ruleDenials) add(rule string, endpoint int, n int64) {
	c := r[rule]
	if c == nil {
		c = &[2]int64{}
		r[rule] = c
	}
	c[endpoint] += n
}

// counts are the denials by rule, the larger endpoint's count of each.
func (r ruleDenials) counts() map[string]int64 {
	out := make(map[string]int64, len(r))
	for rule, c := range r {
		out[rule] = max(c[0], c[1])
	}
	return out
}

type nsAgg struct {
	tally
	workloads   workloadSet
	first, last time.Time
	violations  map[[2]string]*violationAgg
}

func newNSAgg() *nsAgg {
	return &nsAgg{violations: map[[2]string]*violationAgg{}}
}

// violationAgg counts a violation's requests per endpoint: both webhooks
// may record one request's violation.
type violationAgg struct {
	Violation
	t tally
}

// addViolation counts t's requests recording rule in mode.
func addViolation(m map[[2]string]*violationAgg, rule, mode, message string, t tally) {
	k := [2]string{rule, mode}
	agg := m[k]
	if agg == nil {
		agg = &violationAgg{Violation: Violation{Rule: rule, Mode: mode}}
		m[k] = agg
	}
	agg.t.add(t)
	agg.Count = agg.t.admissions()
	if message != "" {
		agg.Message = message
	}
}

func sortedViolations(m map[[2]string]*violationAgg) []Violation {
	out := []Violation{}
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		out = append(out, m[k].Violation)
	}
	return out
}

type imageAgg struct {
	key string
	ref reference.Reference
	// parsed says key is a reference.
	parsed bool
	// target and targetAt: the newest swap's target.
	target   string
	targetAt time.Time
	targets  map[string]bool
	digests  map[string]bool
	// digest and digestAt: the newest digest an admission named.
	digest   string
	digestAt time.Time
	// expectMirror: a swap was made or planned.
	expectMirror bool
	first, last  time.Time
	ns           map[string]*nsAgg
	// days are the requests by day of the image's groups, for the
	// trend: the store's slices, kept as they are (a merged copy would
	// be a third of what the builder holds).
	days          []dayGroup
	violations    map[[2]string]*violationAgg
	denialsByRule ruleDenials
	// foldedInto names the image this one is the mirror of.
	foldedInto string

	copies []*store.CopySummary
	// cands are the scans of the image's digests, by index digest.
	cands  map[string]*candidate
	events []scanEvent
}

type candidate struct {
	at               time.Time
	scanner, version string
	dbTime           time.Time
	manifests        []string
	verdicts         map[string][]scan.Verdict // by namespace, one per manifest
}

type scanEvent struct {
	at              time.Time
	index, manifest string
	critHigh        bool
}

type builder struct {
	opts   Options
	policy *scan.Policy
	images map[string]*imageAgg
	// byDigest and byRef find the images a copy or scan is of.
	byDigest map[string][]*imageAgg
	byRef    map[string][]*imageAgg
	// byTarget finds the images a copy is to.
	byTarget map[string][]*imageAgg
}

func (b *builder) image(key string) *imageAgg {
	im := b.images[key]
	if im == nil {
		im = &imageAgg{key: key, targets: map[string]bool{}, digests: map[string]bool{}, ns: map[string]*nsAgg{},
			violations: map[[2]string]*violationAgg{}, denialsByRule: ruleDenials{}, cands: map[string]*candidate{}}
		if ref, err := reference.Parse(key); err == nil {
			im.ref, im.parsed = ref, true
		}
		b.images[key] = im
	}
	return im
}

// normal is the normalised form of a reference, or s when it does not
// parse.
func normal(s string) string {
	if ref, err := reference.Parse(s); err == nil {
		return ref.String()
	}
	return s
}

func (b *builder) addGroup(g *store.AdmissionGroup) error {
	im := b.image(g.Image)
	validate := g.Endpoint == store.EndpointValidate
	t := groupTally(g, validate, g.Requests)
	if g.Action == string(config.ActionDeny) && !g.DryRun {
		im.denialsByRule.add(g.Rule, btoi(validate), g.Requests)
	}
	if g.Action == string(config.ActionSwap) && g.Target != "" && g.Target != g.Image {
		target := normal(g.Target)
		im.targets[target] = true
		if !g.Last.Before(im.targetAt) {
			im.target, im.targetAt = target, g.Last
		}
	}
	if g.Action == string(config.ActionSwap) || g.Fallback {
		im.expectMirror = true
	}
	if g.Digest != "" {
		im.digests[g.Digest] = true
		if !g.Last.Before(im.digestAt) {
			im.digest, im.digestAt = g.Digest, g.Last
		}
	}
	span(&im.first, &im.last, g.First, g.Last)
	n := im.ns[g.Namespace]
	if n == nil {
		n = newNSAgg()
		im.ns[g.Namespace] = n
	}
	n.add(t)
	span(&n.first, &n.last, g.First, g.Last)
	n.workloads.add(workloadOf(g))
	im.days = append(im.days, dayGroup{days: g.Days, validate: validate, denies: g.Action == string(config.ActionDeny) && !g.DryRun})
	for _, v := range g.Violations {
		mode := v.Mode
		if g.DryRun && mode == string(config.ModeEnforce) {
			mode = "dryRun"
		}
		vt := tally{mutate: t.mutate, validate: t.validate}
		addViolation(im.violations, v.Rule, mode, v.Message, vt)
		addViolation(n.violations, v.Rule, mode, v.Message, vt)
	}
	return nil
}

// groupTally is the tally of requests of g (its requests, or one
// day's), which /validate recorded when validate.
func groupTally(g *store.AdmissionGroup, validate bool, requests int64) tally {
	var t tally
	if validate {
		t.validate = requests
	} else {
		t.mutate = requests
	}
	if g.Action == string(config.ActionDeny) {
		switch {
		case g.DryRun && validate:
			t.validateDryRun = requests
		case g.DryRun:
			t.mutateDryRun = requests
		case validate:
			t.validateDenials = requests
		default:
			t.mutateDenials = requests
		}
	}
	return t
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dayGroup is one admission group's requests by day.
type dayGroup struct {
	days []store.DayRequests
	// validate: /validate recorded them; denies: they are denials (not a
	// dry run's).
	validate, denies bool
}

// dayTally is what the trend counts of an image on one day.
type dayTally struct {
	day                                              int64
	mutate, validate, mutateDenials, validateDenials int64
}

func (t dayTally) admissions() int64 { return max(t.mutate, t.validate) }
func (t dayTally) denials() int64    { return max(t.mutateDenials, t.validateDenials) }

// dayTallies sums groups by day into buf, oldest day first.
func dayTallies(buf []dayTally, groups []dayGroup) []dayTally {
	buf = buf[:0]
	for _, g := range groups {
		for _, d := range g.days {
			t := dayTally{day: d.Day}
			switch {
			case g.validate:
				t.validate = d.Requests
				if g.denies {
					t.validateDenials = d.Requests
				}
			default:
				t.mutate = d.Requests
				if g.denies {
					t.mutateDenials = d.Requests
				}
			}
			buf = append(buf, t)
		}
	}
	slices.SortFunc(buf, func(a, b dayTally) int { return cmp.Compare(a.day, b.day) })
	out := buf[:0]
	for _, t := range buf {
		if n := len(out); n > 0 && out[n-1].day == t.day {
			o := &out[n-1]
			o.mutate += t.mutate
			o.validate += t.validate
			o.mutateDenials += t.mutateDenials
			o.validateDenials += t.validateDenials
			continue
		}
		out = append(out, t)
	}
	return out
}

func workloadOf(g *store.AdmissionGroup) Workload {
	if g.OwnerKind != "" || g.OwnerName != "" {
		return Workload{Namespace: g.Namespace, Kind: g.OwnerKind, Name: g.OwnerName}
	}
	return Workload{Namespace: g.Namespace, Kind: "Pod", Name: g.Pod}
}

func span(first, last *time.Time, f, l time.Time) {
	if first.IsZero() || f.Before(*first) {
		*first = f
	}
	if l.After(*last) {
		*last = l
	}
}

// fold merges the records of a mirror reference into the image it mirrors:
// /validate and a reinvoked /mutate see the swapped image. Their /mutate
// requests are reinvocations of requests already counted, so only their
// /validate requests count.
func (b *builder) fold() {
	sources := map[string]string{}
	for _, im := range b.images {
		for t := range im.targets {
			if t != im.key {
				if prev, ok := sources[t]; !ok || im.key < prev {
					sources[t] = im.key
				}
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(b.images)) {
		src, ok := sources[key]
		if !ok {
			continue
		}
		s, m := b.images[src], b.images[key]
		if s == nil || s.foldedInto != "" {
			continue
		}
		m.foldedInto = src
		s.targets[key] = true
		for d := range m.digests {
			s.digests[d] = true
		}
		if m.digestAt.After(s.digestAt) {
			s.digest, s.digestAt = m.digest, m.digestAt
		}
		span(&s.first, &s.last, m.first, m.last)
		for name, n := range m.ns {
			sn := s.ns[name]
			if sn == nil {
				sn = newNSAgg()
				s.ns[name] = sn
			}
			sn.add(n.validateOnly())
			span(&sn.first, &sn.last, n.first, n.last)
			for _, w := range n.workloads.list() {
				sn.workloads.add(w)
			}
			for _, v := range n.violations {
				addViolation(sn.violations, v.Rule, v.Mode, v.Message, tally{validate: v.t.validate})
			}
		}
		// Only /validate's requests count: see above.
		for _, d := range m.days {
			if d.validate {
				s.days = append(s.days, d)
			}
		}
		for _, v := range m.violations {
			addViolation(s.violations, v.Rule, v.Mode, v.Message, tally{validate: v.t.validate})
		}
		for rule, c := range m.denialsByRule {
			s.denialsByRule.add(rule, 1, c[1])
		}
		delete(b.images, key)
	}
}

// refKeys are the forms a reference is looked up by: as normalised, and
// without its digest.
func refKeys(s string) []string {
	ref, err := reference.Parse(s)
	if err != nil {
		return []string{s}
	}
	keys := []string{ref.String()}
	if ref.Digest != "" && ref.Tag != "" {
		ref.Digest = ""
		keys = append(keys, ref.String())
	}
	return keys
}

// indexTargets indexes the images by the mirror references they were
// swapped to, for the copies.
func (b *builder) indexTargets() {
	b.byTarget = map[string][]*imageAgg{}
	for _, key := range slices.Sorted(maps.Keys(b.images)) {
		im := b.images[key]
		for t := range im.targets {
			b.byTarget[t] = append(b.byTarget[t], im)
		}
	}
}

func (b *builder) addCopy(c *store.CopySummary) error {
	c2 := *c
	src, dst := normal(c.Source), normal(c.Target)
	var srcImage *imageAgg
	if im := b.images[src]; im != nil {
		srcImage = im
		im.copies = append(im.copies, &c2)
	}
	for _, im := range b.byTarget[dst] {
		if im != srcImage {
			im.copies = append(im.copies, &c2)
		}
	}
	return nil
}

// index finds each image's current digest and indexes the images by
// digest and reference, for the scans.
func (b *builder) index() {
	b.byDigest, b.byRef = map[string][]*imageAgg{}, map[string][]*imageAgg{}
	for _, key := range slices.Sorted(maps.Keys(b.images)) {
		im := b.images[key]
		for _, c := range im.copies {
			if c.Latest.Digest != "" && c.Result != "failed" {
				im.digests[c.Latest.Digest] = true
				if !c.Last.Before(im.digestAt) {
					im.digest, im.digestAt = c.Latest.Digest, c.Last
				}
			}
		}
		for d := range im.digests {
			b.byDigest[d] = append(b.byDigest[d], im)
		}
		refs := []string{im.key}
		for t := range im.targets {
			refs = append(refs, t)
		}
		for _, r := range refs {
			for _, k := range refKeys(r) {
				b.byRef[k] = append(b.byRef[k], im)
			}
		}
	}
}

// imagesOf are the images a scan record is of.
func (b *builder) imagesOf(r *store.ScanRecord) []*imageAgg {
	out := slices.Clone(b.byDigest[r.IndexDigest])
	if r.ManifestDigest != r.IndexDigest {
		out = append(out, b.byDigest[r.ManifestDigest]...)
	}
	for _, k := range refKeys(r.Image) {
		out = append(out, b.byRef[k]...)
	}
	slices.SortFunc(out, func(a, b *imageAgg) int { return cmp.Compare(a.key, b.key) })
	return slices.Compact(out)
}

// findings converts stored findings for the policy. The store keeps no
// "unfixed" flag: a finding without a fixed version is unfixed, as Trivy
// and Grype report them; a CVSS of 0 means none.
func findings(fs []store.Finding) []scan.Finding {
	out := make([]scan.Finding, len(fs))
	for i, f := range fs {
		sev, err := scan.ParseSeverity(f.Severity)
		if err != nil {
			sev = scan.SeverityUnknown
		}
		out[i] = scan.Finding{ID: f.ID, Package: f.Package, Installed: f.InstalledVersion, Fixed: f.FixedVersion,
			Severity: sev, CVSS: f.CVSS, HasCVSS: f.CVSS > 0, Unfixed: f.FixedVersion == "", Status: f.Status}
	}
	return out
}

func (b *builder) addScan(r *store.ScanRecord) error {
	ims := b.imagesOf(r)
	if len(ims) == 0 {
		return nil
	}
	fs := findings(r.Findings)
	index := r.IndexDigest
	if index == "" {
		index = r.ManifestDigest
	}
	for _, im := range ims {
		c := im.cands[index]
		if c == nil {
			c = &candidate{verdicts: map[string][]scan.Verdict{}}
			im.cands[index] = c
		}
		if r.Time.After(c.at) {
			c.at, c.scanner, c.version, c.dbTime = r.Time, r.Scanner, r.ScannerVersion, r.DBTime
		}
		c.manifests = append(c.manifests, r.ManifestDigest)
		ref := im.ref
		ref.Digest = index
		for ns := range im.ns {
			c.verdicts[ns] = append(c.verdicts[ns], b.policy.Verdict(fs, ref, ns, b.opts.Now))
		}
	}
	return nil
}

func (b *builder) addScanEvent(r *store.ScanRecord) error {
	ims := b.imagesOf(r)
	if len(ims) == 0 {
		return nil
	}
	ev := scanEvent{at: r.Time, index: r.IndexDigest, manifest: r.ManifestDigest, critHigh: r.Counts["CRITICAL"]+r.Counts["HIGH"] > 0}
	for _, im := range ims {
		im.events = append(im.events, ev)
	}
	return nil
}

// current is the image's scan: that of its current digest, else its
// newest.
func (im *imageAgg) current() (string, *candidate) {
	if c := im.cands[im.digest]; c != nil {
		return im.digest, c
	}
	var best string
	var bc *candidate
	for d, c := range im.cands {
		if bc == nil || c.at.After(bc.at) || c.at.Equal(bc.at) && d < best {
			best, bc = d, c
		}
	}
	return best, bc
}

// finish renders the report. The trend comes first, so that each image's
// days and scan events can go before the images are rendered, and each
// image's aggregate goes once it is rendered: the builder shrinks as the
// report grows.
func (b *builder) finish(r *Report) {
	b.byDigest, b.byRef, b.byTarget = nil, nil, nil
	r.Trend = b.trend()
	keys := slices.Sorted(maps.Keys(b.images))
	type nsStat struct {
		Namespace
		mirrored, scanned int
	}
	nsStats := map[string]*nsStat{}
	suppresses := map[string]map[string]bool{}
	for _, key := range keys {
		im := b.images[key]
		img, nsVerdicts := b.imageOut(im)
		for by := range ignoredBy(nsVerdicts) {
			if suppresses[by] == nil {
				suppresses[by] = map[string]bool{}
			}
			suppresses[by][img.Image] = true
		}
		for _, u := range img.Usage {
			s := nsStats[u.Namespace]
			if s == nil {
				s = &nsStat{Namespace: Namespace{Namespace: u.Namespace}}
				nsStats[u.Namespace] = s
			}
			s.Images++
			s.Admissions += u.Admissions
			s.Denials += u.Denials
			if img.Mirror.Status == MirrorPresent {
				s.mirrored++
			}
			if u.ScanStatus == ScanPass || u.ScanStatus == ScanFail {
				s.scanned++
				s.Counts = addCounts(s.Counts, img.Scan.Counts)
			}
			if u.ScanStatus == ScanFail {
				s.FailingImages++
			}
		}
		r.Images = append(r.Images, img)
		delete(b.images, key)
	}
	for _, name := range slices.Sorted(maps.Keys(nsStats)) {
		s := nsStats[name]
		s.Mirrored = share(s.mirrored, s.Images)
		s.Scanned = share(s.scanned, s.Images)
		s.CriticalFindings = s.Counts.Critical
		r.Namespaces = append(r.Namespaces, s.Namespace)
	}
	r.Exceptions = b.exceptions(suppresses)
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func addCounts(a, b scan.Counts) scan.Counts {
	return scan.Counts{Critical: a.Critical + b.Critical, High: a.High + b.High, Medium: a.Medium + b.Medium, Low: a.Low + b.Low, Unknown: a.Unknown + b.Unknown}
}

func ignoredBy(vs map[string]scan.Verdict) map[string]bool {
	out := map[string]bool{}
	for _, v := range vs {
		for _, ig := range v.Ignored {
			out[ig.By] = true
		}
	}
	return out
}

// imageOut renders an image and returns its verdict per namespace.
func (b *builder) imageOut(im *imageAgg) (Image, map[string]scan.Verdict) {
	img := Image{Image: im.key, Target: im.target, Digests: orEmpty(slices.Sorted(maps.Keys(im.digests))),
		Namespaces: slices.Sorted(maps.Keys(im.ns)), Workloads: []Workload{}, FirstAdmission: im.first, LastAdmission: im.last,
		DenialsByRule: im.denialsByRule.counts(), Violations: sortedViolations(im.violations), Usage: []Usage{}}
	img.Mirror = mirrorOf(im)
	digest, cand := im.current()
	skipped := im.parsed && b.policy.Skip(im.ref)
	nsVerdicts := map[string]scan.Verdict{}
	var all []scan.Verdict
	for _, name := range img.Namespaces {
		n := im.ns[name]
		t := n.tally
		img.Admissions += t.admissions()
		img.Denials += t.denials()
		img.DryRunDenials += t.dryRunDenials()
		u := Usage{Namespace: name, Workloads: sortedWorkloads(n.workloads), FirstAdmission: n.first, LastAdmission: n.last,
			Admissions: t.admissions(), Denials: t.denials(), Violations: sortedViolations(n.violations)}
		img.Workloads = append(img.Workloads, u.Workloads...)
		switch {
		case skipped:
			u.ScanStatus = ScanSkipped
		case cand == nil:
			u.ScanStatus = ScanPending
		default:
			v := scan.Combine(cand.verdicts[name]...)
			nsVerdicts[name] = v
			all = append(all, v)
			u.ScanStatus = string(v.Result)
			u.Failing, u.Ignored = len(v.Failing), len(v.Ignored)
			if len(v.Failing) > 0 {
				u.Worst = v.Failing[0].Severity.String()
			}
		}
		img.Usage = append(img.Usage, u)
	}
	img.Scan = Scan{Status: ScanPending, Manifests: []string{}, Failing: []Finding{}, Ignored: []Ignored{}}
	switch {
	case skipped:
		img.Scan.Status = ScanSkipped
	case cand != nil:
		s := &img.Scan
		v := scan.Combine(all...)
		s.Status = string(v.Result)
		s.Scanner, s.ScannerVersion, s.Digest = cand.scanner, cand.version, digest
		at := cand.at
		s.ScannedAt = &at
		if !cand.dbTime.IsZero() {
			db := cand.dbTime
			s.DBTime = &db
		}
		s.Manifests = slices.Compact(slices.Sorted(slices.Values(cand.manifests)))
		s.Counts = v.Counts
		s.Failing, s.Ignored = findingsOut(v, nsVerdicts, len(img.Namespaces))
	}
	return img, nsVerdicts
}

func sortedWorkloads(set workloadSet) []Workload {
	return slices.SortedFunc(slices.Values(set.list()), func(a, b Workload) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
}

// workloadSet is a set of workloads: a slice while it is small (most
// images run in one or two workloads of a namespace, and a map of one
// entry costs ten times its slice), a map once it grows.
type workloadSet struct {
	small []Workload
	large map[Workload]bool
}

const smallWorkloadSet = 8

func (s *workloadSet) add(w Workload) {
	if s.large != nil {
		s.large[w] = true
		return
	}
	if slices.Contains(s.small, w) {
		return
	}
	if len(s.small) < smallWorkloadSet {
		s.small = append(s.small, w)
		return
	}
	s.large = make(map[Workload]bool, 2*smallWorkloadSet)
	for _, x := range s.small {
		s.large[x] = true
	}
	s.large[w] = true
	s.small = nil
}

func (s *workloadSet) list() []Workload {
	if s.large != nil {
		return slices.Collect(maps.Keys(s.large))
	}
	return s.small
}

// findingsOut lists the failing and ignored findings of the combined
// verdict v, each with the namespaces it applies in when not all n.
func findingsOut(v scan.Verdict, byNS map[string]scan.Verdict, n int) ([]Finding, []Ignored) {
	key := func(f scan.Finding) string { return f.ID + "\x00" + f.Package + "\x00" + f.Installed }
	failNS, ignNS := map[string][]string{}, map[string][]string{}
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		for _, f := range byNS[ns].Failing {
			failNS[key(f.Finding)] = append(failNS[key(f.Finding)], ns)
		}
		for _, ig := range byNS[ns].Ignored {
			k := key(ig.Finding) + "\x00" + ig.By
			ignNS[k] = append(ignNS[k], ns)
		}
	}
	some := func(nss []string) []string {
		if len(nss) == n {
			return nil
		}
		return nss
	}
	failing := make([]Finding, 0, len(v.Failing))
	for _, f := range v.Failing {
		out := Finding{ID: f.ID, Severity: f.Severity.String(), Package: f.Package, Installed: f.Installed, Fixed: f.Fixed,
			Reason: f.Reason, Namespaces: some(failNS[key(f.Finding)])}
		if f.HasCVSS {
			cvss := f.CVSS
			out.CVSS = &cvss
		}
		failing = append(failing, out)
	}
	ignored := make([]Ignored, 0, len(v.Ignored))
	for _, ig := range v.Ignored {
		out := Ignored{ID: ig.ID, Severity: ig.Severity.String(), Package: ig.Package, By: ig.By,
			Namespaces: some(ignNS[key(ig.Finding)+"\x00"+ig.By])}
		if !ig.Expires.IsZero() {
			d := lastDay(ig.Expires)
			out.Expires = &d
		}
		ignored = append(ignored, out)
	}
	sort.SliceStable(ignored, func(i, j int) bool {
		return cmp.Or(cmp.Compare(ignored[i].ID, ignored[j].ID), cmp.Compare(ignored[i].Package, ignored[j].Package)) < 0
	})
	return failing, ignored
}

// lastDay is the last day an entry ending at end applies, YYYY-MM-DD.
func lastDay(end time.Time) string {
	return end.Add(-time.Nanosecond).UTC().Format(config.IgnoreDateLayout)
}

func mirrorOf(im *imageAgg) Mirror {
	m := Mirror{Status: MirrorNone}
	if im.expectMirror {
		m.Status = MirrorMissing
	}
	var newest *store.CopySummary
	for _, c := range im.copies {
		if newest == nil || c.Last.After(newest.Last) {
			newest = c
		}
		if c.Result != "failed" && (m.FirstMirrored == nil || c.First.Before(*m.FirstMirrored)) {
			first := c.First
			m.FirstMirrored = &first
		}
	}
	if newest == nil {
		return m
	}
	l := newest.Latest
	m.LastCopy = &Copy{Time: l.Time, Target: l.Target, Result: l.Result, Digest: l.Digest, Bytes: l.Bytes,
		DurationSeconds: l.Duration.Seconds(), Error: l.Error}
	if l.Result == "failed" {
		m.Status = MirrorFailed
	} else {
		m.Status = MirrorPresent
	}
	return m
}

const day = 24 * time.Hour

// trend replays each image's scans over the days it was admitted.
func (b *builder) trend() []Day {
	type dayStat struct {
		Day
		toMirrored []float64
	}
	days := map[int64]*dayStat{}
	get := func(d int64) *dayStat {
		s := days[d]
		if s == nil {
			s = &dayStat{Day: Day{Date: time.Unix(d, 0).UTC().Format(time.DateOnly)}}
			days[d] = s
		}
		return s
	}
	var buf []dayTally
	for _, im := range b.images {
		buf = dayTallies(buf, im.days)
		slices.SortStableFunc(im.events, func(a, b scanEvent) int { return a.at.Compare(b.at) })
		state := map[string]bool{} // manifest digest → critical or high, of the newest index digest
		index := ""
		next := 0
		for _, t := range buf {
			d := t.day * int64(day/time.Second)
			end := time.Unix(d, 0).Add(day)
			for ; next < len(im.events) && im.events[next].at.Before(end); next++ {
				ev := im.events[next]
				if ev.index != index {
					index, state = ev.index, map[string]bool{}
				}
				state[ev.manifest] = ev.critHigh
			}
			s := get(d)
			s.Admissions += t.admissions()
			s.Denials += t.denials()
			s.Images++
			if len(state) > 0 {
				s.Scanned++
				for _, ch := range state {
					if ch {
						s.ImagesCriticalHigh++
						break
					}
				}
			}
		}
		if m := mirrorOf(im); m.FirstMirrored != nil && !im.first.IsZero() {
			s := get(im.first.Truncate(day).Unix())
			s.toMirrored = append(s.toMirrored, max(0, m.FirstMirrored.Sub(im.first).Seconds()))
		}
		im.days, im.events = nil, nil // read by nothing after the trend
	}
	out := []Day{}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		s := days[d]
		s.ScanCoverage = share(s.Scanned, s.Images)
		if len(s.toMirrored) > 0 {
			m := median(s.toMirrored)
			s.MedianSecondsToMirrored = &m
		}
		out = append(out, s.Day)
	}
	return out
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func (b *builder) exceptions(suppresses map[string]map[string]bool) []Exception {
	names := b.policy.IgnoreEntries()
	out := []Exception{}
	for i, e := range b.opts.Scanning.Ignore {
		if i >= len(names) {
			break
		}
		x := Exception{Entry: names[i], ID: e.ID, Images: orEmpty(e.Images), Namespaces: orEmpty(e.Namespaces), Expires: e.Expires, Reason: e.Reason,
			Status: ExceptionActive, Suppresses: slices.Sorted(maps.Keys(suppresses[names[i]]))}
		if x.Suppresses == nil {
			x.Suppresses = []string{}
		}
		x.MatchesNothing = len(x.Suppresses) == 0
		if end, ok := e.IgnoreExpiry(); ok {
			left := end.Sub(b.opts.Now)
			x.DaysLeft = int(math.Floor(left.Hours() / 24))
			switch {
			case left <= 0:
				x.Status = ExceptionExpired
			case left <= ExpiringWithin:
				x.Status = ExceptionExpiring
			}
		}
		out = append(out, x)
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
