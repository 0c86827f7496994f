package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxPolicyReportBytes bounds the JSON size of one PolicyReport, well
// under etcd's 1.5 MiB object limit so that the API server's own fields
// fit beside it.
const MaxPolicyReportBytes = 1 << 20

// PolicyReportSource is the results' source, and the reports' name.
const PolicyReportSource = "image-swapper"

// The PolicyReport policy and the rule of the vulnerability gate.
const (
	PolicyName        = "image-swapper"
	VulnerabilityRule = "security.scanning"
)

// PolicyReport is a wgpolicyk8s.io/v1alpha2 PolicyReport, as the Policy
// Report CRD (kubernetes-sigs/wg-policy-prototypes) defines it.
type PolicyReport struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Metadata   metav1.ObjectMeta    `json:"metadata"`
	Summary    PolicyReportSummary  `json:"summary"`
	Results    []PolicyReportResult `json:"results"`
}

// PolicyReportSummary counts a report's results by result.
type PolicyReportSummary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// PolicyReportResult is one image × rule.
type PolicyReportResult struct {
	Source  string `json:"source"`
	Policy  string `json:"policy"`
	Rule    string `json:"rule"`
	Result  string `json:"result"`
	Scored  bool   `json:"scored"`
	Message string `json:"message,omitempty"`
	// Severity is on the PolicyReport scale of the v1alpha2 CRD: high,
	// medium or low.
	Severity   string                   `json:"severity,omitempty"`
	Category   string                   `json:"category,omitempty"`
	Timestamp  metav1.Timestamp         `json:"timestamp"`
	Resources  []corev1.ObjectReference `json:"resources,omitempty"`
	Properties map[string]string        `json:"properties,omitempty"`
}

// Annotations on a report that could not hold every result.
const (
	AnnotationDroppedPass = "image-swapper.io/dropped-pass-results"
	AnnotationPart        = "image-swapper.io/part"
)

// severityScale maps scanner severities to the PolicyReport scale of the
// upstream v1alpha2 CRD, whose enum is high, medium and low: CRITICAL and
// HIGH are high, and anything below LOW has no severity. The scanner's
// severity is in the result's properties ("worst").
func severityScale(s string) string {
	switch s {
	case "CRITICAL", "HIGH":
		return "high"
	case "MEDIUM":
		return "medium"
	case "LOW":
		return "low"
	}
	return ""
}

// modeSeverity is the severity of a list violation: how hard the rule is
// enforced.
func modeSeverity(mode string) string {
	switch mode {
	case "enforce":
		return "high"
	case "warn", "dryRun":
		return "medium"
	}
	return "low"
}

func modeResult(mode string) string {
	if mode == "enforce" {
		return "fail"
	}
	return "warn"
}

// PolicyReports builds one PolicyReport per namespace of r. Each result
// is one image × rule: a list violation (fail when enforced, warn in warn,
// audit or dry-run mode) or the vulnerability gate (fail, pass, or skip
// while pending or skipped). A report whose JSON would exceed maxBytes
// first drops its passing results, then is split into parts named
// image-swapper, image-swapper-2, and so on.
func PolicyReports(r *Report, maxBytes int) ([]PolicyReport, error) {
	byNS := map[string][]PolicyReportResult{}
	ts := metav1.Timestamp{Seconds: r.Generated.Unix()}
	for _, img := range r.Images {
		for _, u := range img.Usage {
			byNS[u.Namespace] = append(byNS[u.Namespace], imageResults(img, u, ts)...)
		}
	}
	var out []PolicyReport
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		if ns == "" {
			continue // a PolicyReport lives in a namespace
		}
		reports, err := split(ns, byNS[ns], maxBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, reports...)
	}
	return out, nil
}

func imageResults(img Image, u Usage, ts metav1.Timestamp) []PolicyReportResult {
	props := map[string]string{
		"image":    img.Image,
		"digest":   img.Scan.Digest,
		"target":   img.Target,
		"critical": strconv.Itoa(img.Scan.Counts.Critical),
		"high":     strconv.Itoa(img.Scan.Counts.High),
		"medium":   strconv.Itoa(img.Scan.Counts.Medium),
		"low":      strconv.Itoa(img.Scan.Counts.Low),
		"unknown":  strconv.Itoa(img.Scan.Counts.Unknown),
		"mirror":   img.Mirror.Status,
	}
	if props["digest"] == "" && len(img.Digests) > 0 {
		props["digest"] = img.Digests[len(img.Digests)-1]
	}
	resources := objectRefs(u.Workloads)
	var out []PolicyReportResult
	for _, v := range u.Violations {
		p := clone(props)
		p["mode"], p["admissions"] = v.Mode, strconv.FormatInt(v.Count, 10)
		out = append(out, PolicyReportResult{Source: PolicyReportSource, Policy: PolicyName, Rule: v.Rule, Result: modeResult(v.Mode),
			Scored: true, Message: img.Image + ": " + v.Message, Severity: modeSeverity(v.Mode), Category: "Image policy",
			Timestamp: ts, Resources: resources, Properties: p})
	}
	res := PolicyReportResult{Source: PolicyReportSource, Policy: PolicyName, Rule: VulnerabilityRule, Scored: true,
		Category: "Vulnerability scan", Timestamp: ts, Resources: resources, Properties: props}
	switch u.ScanStatus {
	case ScanFail:
		res.Result, res.Severity = "fail", severityScale(u.Worst)
		res.Properties = clone(props)
		res.Properties["worst"] = u.Worst
		res.Message = fmt.Sprintf("%s has %d failing vulnerabilities (worst %s)", img.Image, u.Failing, u.Worst)
	case ScanPass:
		res.Result, res.Message = "pass", img.Image+" passes the vulnerability gate"
	case ScanSkipped:
		res.Result, res.Message = "skip", img.Image+" is not scanned (security.scanning.skipImages)"
	default:
		res.Result, res.Message = "skip", img.Image+" has no scan yet"
	}
	return append(out, res)
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// objectRefs are the Pods, or for Pods the API server names, their
// controllers.
func objectRefs(ws []Workload) []corev1.ObjectReference {
	var out []corev1.ObjectReference
	for _, w := range ws {
		out = append(out, corev1.ObjectReference{APIVersion: apiVersionOf(w.Kind), Kind: w.Kind, Namespace: w.Namespace,
			Name: strings.TrimSuffix(w.Name, "*")})
	}
	return out
}

func apiVersionOf(kind string) string {
	switch kind {
	case "Pod":
		return "v1"
	case "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet":
		return "apps/v1"
	case "Job", "CronJob":
		return "batch/v1"
	}
	return ""
}

// rank orders results for splitting: failures first, passes last (they
// are dropped first).
func rank(result string) int {
	return map[string]int{"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}[result]
}

func newReport(ns, name string, results []PolicyReportResult) PolicyReport {
	p := PolicyReport{APIVersion: "wgpolicyk8s.io/v1alpha2", Kind: "PolicyReport",
		Metadata: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "image-swapper"}},
		Results:  results}
	for _, res := range results {
		switch res.Result {
		case "pass":
			p.Summary.Pass++
		case "fail":
			p.Summary.Fail++
		case "warn":
			p.Summary.Warn++
		case "error":
			p.Summary.Error++
		case "skip":
			p.Summary.Skip++
		}
	}
	return p
}

func size(v any) (int, error) {
	b, err := json.Marshal(v)
	return len(b), err
}

func split(ns string, results []PolicyReportResult, maxBytes int) ([]PolicyReport, error) {
	slices.SortStableFunc(results, func(a, b PolicyReportResult) int { return rank(a.Result) - rank(b.Result) })
	whole := newReport(ns, PolicyReportSource, results)
	n, err := size(whole)
	if err != nil || n <= maxBytes {
		return []PolicyReport{whole}, err
	}
	kept := slices.DeleteFunc(slices.Clone(results), func(r PolicyReportResult) bool { return r.Result == "pass" })
	dropped := len(results) - len(kept)
	annotate := func(p *PolicyReport) {
		if dropped > 0 {
			p.Metadata.Annotations = map[string]string{AnnotationDroppedPass: strconv.Itoa(dropped)}
		}
	}
	one := newReport(ns, PolicyReportSource, kept)
	annotate(&one)
	if n, err := size(one); err != nil || n <= maxBytes {
		return []PolicyReport{one}, err
	}
	empty := newReport(ns, PolicyReportSource, nil)
	annotate(&empty)
	overhead, err := size(empty)
	if err != nil {
		return nil, err
	}
	overhead += 64 // the part annotation and name suffix
	var parts [][]PolicyReportResult
	var cur []PolicyReportResult
	curSize := overhead
	for _, res := range kept {
		n, err := size(res)
		if err != nil {
			return nil, err
		}
		if n+1+overhead > maxBytes {
			return nil, fmt.Errorf("policy report of %s: one result for %s is %d bytes, more than %d", ns, res.Properties["image"], n, maxBytes)
		}
		if len(cur) > 0 && curSize+n+1 > maxBytes {
			parts, cur, curSize = append(parts, cur), nil, overhead
		}
		cur = append(cur, res)
		curSize += n + 1
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	out := make([]PolicyReport, len(parts))
	for i, part := range parts {
		name := PolicyReportSource
		if i > 0 {
			name = fmt.Sprintf("%s-%d", PolicyReportSource, i+1)
		}
		out[i] = newReport(ns, name, part)
		annotate(&out[i])
		if out[i].Metadata.Annotations == nil {
			out[i].Metadata.Annotations = map[string]string{}
		}
		out[i].Metadata.Annotations[AnnotationPart] = fmt.Sprintf("%d/%d", i+1, len(parts))
	}
	return out, nil
}

// WritePolicyReports writes the PolicyReports of r as a YAML stream, one
// document per report.
func WritePolicyReports(w io.Writer, r *Report, maxBytes int) error {
	reports, err := PolicyReports(r, maxBytes)
	if err != nil {
		return err
	}
	for i := range reports {
		// Through JSON, so that the Kubernetes types' JSON tags and
		// marshallers apply; YAML keeps JSON's key order.
		j, err := json.Marshal(&reports[i])
		if err != nil {
			return err
		}
		var node yaml.Node
		if err := yaml.Unmarshal(j, &node); err != nil {
			return err
		}
		block(&node)
		var buf bytes.Buffer
		buf.WriteString("---\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&node); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// block drops the flow style JSON gave the nodes; the encoder still
// quotes strings that would read as another type.
func block(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle
	for _, c := range n.Content {
		block(c)
	}
}
