package scan

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Result is a verdict's outcome.
type Result string

// The results, as the CLI's JSON and admission name them.
const (
	ResultPass    Result = "pass"    // no finding fails the image
	ResultFail    Result = "fail"    // at least one finding fails it
	ResultPending Result = "pending" // no scan has finished yet
	ResultError   Result = "error"   // the scan failed; admission treats it like pending
)

// rank orders results from best to worst, for Combine.
func (r Result) rank() int {
	switch r {
	case ResultPass:
		return 0
	case ResultPending:
		return 1
	case ResultError:
		return 2
	}
	return 3
}

// Policy is the compiled security.scanning thresholds, ignore entries,
// VEX documents and skipImages. It is immutable and safe for concurrent
// use; a config reload compiles a new one, so changed thresholds apply to
// the next verdict without a rescan.
type Policy struct {
	failOnCritical bool
	severity       Severity
	hasSeverity    bool
	maxCVSS        float64
	hasMaxCVSS     bool
	ignoreUnfixed  bool
	skip           []glob.Pattern
	ignores        []ignoreEntry
	vex            *VEX
	vexFiles       []string
}

// NewPolicy compiles the policy of s, reading its VEX documents. Errors
// name the key path or file.
func NewPolicy(s config.Scanning) (*Policy, error) {
	p := &Policy{failOnCritical: s.FailOnCritical, ignoreUnfixed: s.IgnoreUnfixed, vexFiles: slices.Clone(s.VEX)}
	var errs []error
	if s.Severity != "" {
		sev, err := ParseSeverity(s.Severity)
		if err != nil {
			errs = append(errs, fmt.Errorf("security.scanning.severity: %w", err))
		}
		p.severity, p.hasSeverity = sev, err == nil
	}
	if s.MaxCVSS != nil {
		p.maxCVSS, p.hasMaxCVSS = *s.MaxCVSS, true
	}
	skip, err := compileImages("security.scanning.skipImages", s.SkipImages)
	if err != nil {
		errs = append(errs, err)
	}
	p.skip = skip
	for i, e := range s.Ignore {
		entry, err := compileIgnore(i, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.ignores = append(p.ignores, entry)
	}
	if len(s.VEX) > 0 {
		v, err := LoadVEX(s.VEX...)
		if err != nil {
			errs = append(errs, fmt.Errorf("security.scanning.vex: %w", err))
		}
		p.vex = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Skip reports whether image matches security.scanning.skipImages: it is
// never scanned and never denied by the gate.
func (p *Policy) Skip(image reference.Reference) bool {
	return matchesImage(p.skip, reference.Spellings(image))
}

// Verdict is the policy's judgement of one image's findings.
type Verdict struct {
	Result Result
	// Failing are the findings that fail the image, worst first.
	Failing []Failure
	// Ignored are findings that an ignore entry, a VEX statement or
	// ignoreUnfixed kept from failing the image.
	Ignored []Ignored
	// Counts are all findings of the scan by severity, ignored or not.
	Counts Counts
	// Err is the scan's failure, for ResultError.
	Err error
}

// Failure is a failing finding and the threshold it trips.
type Failure struct {
	Finding
	// Reason names the threshold: "CRITICAL (failOnCritical)",
	// "HIGH is at or above severity HIGH", "CVSS 9.8 is above maxCVSS 8.9".
	Reason string
}

// Ignored is a finding kept from failing the image.
type Ignored struct {
	Finding
	// By names what ignored it: an ignore entry
	// ("security.scanning.ignore[0] (CVE-2019-18276)"), a VEX statement
	// ("vex.json: statements[2] (not_affected: …)") or
	// "security.scanning.ignoreUnfixed".
	By string
	// Expires is when an ignore entry stops applying; zero for VEX and
	// ignoreUnfixed.
	Expires time.Time
}

// Pending is the verdict of an image whose scan has not finished.
func Pending() Verdict { return Verdict{Result: ResultPending} }

// Errored is the verdict of an image whose scan failed.
func Errored(err error) Verdict { return Verdict{Result: ResultError, Err: err} }

// Verdict judges findings of image (normalised, with the scanned digest
// when known: VEX products may name it) in namespace ("" outside
// admission) at now. Ignore entries that expired before now no longer
// apply. The result is pass or fail; skipped images always pass.
func (p *Policy) Verdict(findings []Finding, image reference.Reference, namespace string, now time.Time) Verdict {
	spellings := reference.Spellings(image)
	if matchesImage(p.skip, spellings) {
		return Verdict{Result: ResultPass, Counts: CountFindings(findings)}
	}
	return p.verdict(findings, image, spellings, namespace, now)
}

// verdict is Verdict of an image that is not skipped, whose spellings
// are known.
func (p *Policy) verdict(findings []Finding, image reference.Reference, spellings []string, namespace string, now time.Time) Verdict {
	v := Verdict{Result: ResultPass, Counts: CountFindings(findings)}
	for i := range findings {
		f := &findings[i]
		if by, expires, ok := p.ignored(f, image, spellings, namespace, now); ok {
			v.Ignored = append(v.Ignored, Ignored{Finding: *f, By: by, Expires: expires})
			continue
		}
		reason := p.trips(f)
		if reason == "" {
			continue
		}
		if p.ignoreUnfixed && f.Unfixed {
			v.Ignored = append(v.Ignored, Ignored{Finding: *f, By: "security.scanning.ignoreUnfixed"})
			continue
		}
		v.Failing = append(v.Failing, Failure{Finding: *f, Reason: reason})
	}
	if len(v.Failing) > 0 {
		v.Result = ResultFail
	}
	sortFailures(v.Failing)
	return v
}

func (p *Policy) ignored(f *Finding, image reference.Reference, spellings []string, namespace string, now time.Time) (by string, expires time.Time, ok bool) {
	for i := range p.ignores {
		e := &p.ignores[i]
		if e.applies(f, spellings, namespace, now) {
			return e.name, e.end, true
		}
	}
	if s, ok := p.vex.suppresses(f, image, spellings); ok {
		by := s.source + " (" + s.status
		if s.reason != "" {
			by += ": " + s.reason
		}
		return by + ")", time.Time{}, true
	}
	return "", time.Time{}, false
}

// trips returns the first threshold f trips, or "".
func (p *Policy) trips(f *Finding) string {
	switch {
	case p.failOnCritical && f.Severity == SeverityCritical:
		return "CRITICAL (failOnCritical)"
	case p.hasSeverity && f.Severity >= p.severity:
		return fmt.Sprintf("%s is at or above severity %s", f.Severity, p.severity)
	case p.hasMaxCVSS && f.HasCVSS && f.CVSS > p.maxCVSS:
		return fmt.Sprintf("CVSS %g is above maxCVSS %g", f.CVSS, p.maxCVSS)
	}
	return ""
}

func sortFailures(fs []Failure) {
	slices.SortStableFunc(fs, func(a, b Failure) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(b.CVSS, a.CVSS),
			strings.Compare(a.ID, b.ID),
			strings.Compare(a.Package, b.Package),
		)
	})
}

// IgnoreEntries names the policy's ignore entries as Ignored.By does, in
// file order, so that callers can report those that matched nothing.
func (p *Policy) IgnoreEntries() []string {
	out := make([]string, len(p.ignores))
	for i, e := range p.ignores {
		out[i] = e.name
	}
	return out
}

// Unused returns the ignore entries that ignored nothing in any of vs.
func (p *Policy) Unused(vs ...Verdict) []string {
	used := map[string]bool{}
	for _, v := range vs {
		for _, ig := range v.Ignored {
			used[ig.By] = true
		}
	}
	var out []string
	for _, name := range p.IgnoreEntries() {
		if !used[name] {
			out = append(out, name)
		}
	}
	return out
}

// Combine is the verdict of an index from those of its platforms: the
// worst result, the failing and ignored findings of all (each once), and
// the highest count of each severity over the platforms (the platforms
// mostly share their packages, so a sum would count them twice).
func Combine(vs ...Verdict) Verdict {
	if len(vs) == 0 {
		return Pending()
	}
	out := Verdict{Result: ResultPass}
	seenF, seenI := map[string]bool{}, map[string]bool{}
	var errs []error
	for _, v := range vs {
		if v.Result.rank() > out.Result.rank() {
			out.Result = v.Result
		}
		if v.Err != nil {
			errs = append(errs, v.Err)
		}
		for _, f := range v.Failing {
			if k := findingKey(f.Finding); !seenF[k] {
				seenF[k] = true
				out.Failing = append(out.Failing, f)
			}
		}
		for _, ig := range v.Ignored {
			if k := findingKey(ig.Finding) + "\x00" + ig.By; !seenI[k] {
				seenI[k] = true
				out.Ignored = append(out.Ignored, ig)
			}
		}
		out.Counts = maxCounts(out.Counts, v.Counts)
	}
	out.Err = errors.Join(errs...)
	sortFailures(out.Failing)
	return out
}

func findingKey(f Finding) string {
	return f.ID + "\x00" + f.Package + "\x00" + f.Installed
}

func maxCounts(a, b Counts) Counts {
	return Counts{
		Critical: max(a.Critical, b.Critical),
		High:     max(a.High, b.High),
		Medium:   max(a.Medium, b.Medium),
		Low:      max(a.Low, b.Low),
		Unknown:  max(a.Unknown, b.Unknown),
	}
}

// Message is the sentence admission shows for a verdict that does not
// pass: for fail, the image, the count of failing findings, the worst few
// (id, severity, package, fixed version) and how to add an exception; for
// pending and error, that the image is being scanned. It is "" for pass.
func (v Verdict) Message(image string, worst int) string {
	switch v.Result {
	case ResultPass:
		return ""
	case ResultPending, ResultError:
		return image + " is being scanned for vulnerabilities; retry in a minute"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d failing vulnerabilit", image, len(v.Failing))
	if len(v.Failing) == 1 {
		b.WriteString("y: ")
	} else {
		b.WriteString("ies: ")
	}
	for i, f := range v.Failing {
		if i == worst {
			fmt.Fprintf(&b, ", and %d more", len(v.Failing)-worst)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fixed := "no fix yet"
		if f.Fixed != "" {
			fixed = "fixed in " + f.Fixed
		}
		fmt.Fprintf(&b, "%s (%s, %s %s, %s)", f.ID, f.Severity, f.Package, f.Installed, fixed)
	}
	b.WriteString("; to accept one, add it to security.scanning.ignore with images, expires and reason")
	return b.String()
}

// PlatformScan is the finished scan of one platform's image manifest.
type PlatformScan struct {
	Digest   string
	Platform string
	Findings []Finding
	// Time is when the scan finished.
	Time time.Time
}

// ImageScan is what is known of one image's scans: of each platform of
// an index that is scanned, or of its single manifest.
type ImageScan struct {
	// Ref is the image, with the digest it resolved to when that is known.
	Ref reference.Reference
	// Scanned are the platforms whose scan has finished.
	Scanned []PlatformScan
	// Pending are the manifest digests whose scan has not finished.
	Pending []string
	// Err is why (part of) the image could not be scanned: its digest or
	// index could not be read, or a scan failed.
	Err error
}

// Judge is the verdict on an image from its scans: each scanned platform
// is judged and the verdicts combined (see Combine), so one failing
// platform fails the image, and one not scanned yet (or whose scan
// failed) keeps an otherwise passing image pending (or errored).
func (p *Policy) Judge(s ImageScan, namespace string, now time.Time) Verdict {
	vs := make([]Verdict, 0, len(s.Scanned)+2)
	if len(s.Scanned) > 0 {
		// The spellings of the image are the same for every platform.
		spellings := reference.Spellings(s.Ref)
		skipped := matchesImage(p.skip, spellings)
		for _, ps := range s.Scanned {
			if skipped {
				vs = append(vs, Verdict{Result: ResultPass, Counts: CountFindings(ps.Findings)})
				continue
			}
			vs = append(vs, p.verdict(ps.Findings, s.Ref, spellings, namespace, now))
		}
	}
	if len(s.Pending) > 0 {
		vs = append(vs, Pending())
	}
	if s.Err != nil {
		vs = append(vs, Errored(s.Err))
	}
	return Combine(vs...)
}
