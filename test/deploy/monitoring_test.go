package deploy_test

// The monitoring artifacts: the alerting rules (one file in the chart,
// wrapped into the PrometheusRule of the chart and of
// deploy/monitoring/prometheusrule.yaml), their promtool unit tests, and
// the Grafana dashboard. promtool comes from IMAGE_SWAPPER_PROMTOOL
// (`export IMAGE_SWAPPER_PROMTOOL="$(bash .ci/tools.sh promtool)"`).

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/tagsync"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

const (
	rulesFile          = "../../deploy/helm/image-swapper/files/prometheus-rules.yaml"
	rulesTestFile      = "../../deploy/monitoring/rules_test.yaml"
	prometheusRuleFile = "../../deploy/monitoring/prometheusrule.yaml"
	dashboardFile      = "../../deploy/monitoring/grafana-dashboard.json"
	operationsDoc      = "../../docs/operations.md"
	// runbookBase is where every alert's runbook_url points, followed by
	// the anchor of a heading of docs/operations.md.
	runbookBase = "https://github.com/image-swapper/image-swapper/blob/main/docs/operations.md#"
)

// ruleGroups is a Prometheus rule file, and the spec of a PrometheusRule.
type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func (g ruleGroups) rules() []rule {
	var out []rule
	for _, group := range g.Groups {
		out = append(out, group.Rules...)
	}
	return out
}

// readYAML decodes the YAML file into into, strictly.
func readYAML(t *testing.T, file string, into any) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return data
}

// promtool runs promtool with args and returns its combined output,
// failing the test when it fails.
func promtool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertingRulesPassPromtoolCheck(t *testing.T) {
	bin := testenv.PromtoolBinary(t)
	t.Run("the rule groups", func(t *testing.T) {
		out := promtool(t, bin, "check", "rules", "--lint-fatal", rulesFile)
		t.Logf("%s", out)
	})
	t.Run("the spec of deploy/monitoring/prometheusrule.yaml", func(t *testing.T) {
		var pr struct {
			Spec json.RawMessage `json:"spec"`
		}
		data, err := os.ReadFile(prometheusRuleFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &pr); err != nil {
			t.Fatalf("%s: %v", prometheusRuleFile, err)
		}
		spec, err := yaml.JSONToYAML(pr.Spec)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "spec.yaml")
		if err := os.WriteFile(file, spec, 0o644); err != nil {
			t.Fatal(err)
		}
		out := promtool(t, bin, "check", "rules", "--lint-fatal", file)
		t.Logf("%s", out)
	})
}

func TestAlertingRulesPassTheirUnitTests(t *testing.T) {
	bin := testenv.PromtoolBinary(t)
	out := promtool(t, bin, "test", "rules", rulesTestFile)
	t.Logf("%s", out)
}

func TestPrometheusRuleWrapsTheRuleGroups(t *testing.T) {
	var groups ruleGroups
	readYAML(t, rulesFile, &groups)
	var pr struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       ruleGroups     `json:"spec"`
	}
	readYAML(t, prometheusRuleFile, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Errorf("%s is %s %s, want monitoring.coreos.com/v1 PrometheusRule", prometheusRuleFile, pr.APIVersion, pr.Kind)
	}
	if pr.Metadata["name"] != release || pr.Metadata["namespace"] != namespace {
		t.Errorf("%s is named %v/%v, want %s/%s", prometheusRuleFile, pr.Metadata["namespace"], pr.Metadata["name"], namespace, release)
	}
	if !reflect.DeepEqual(pr.Spec, groups) {
		t.Errorf("the spec of %s differs from %s: run `eval \"$(bash .ci/tools.sh helm)\"; deploy/render.sh`", prometheusRuleFile, rulesFile)
	}
}

func TestPrometheusRuleIsWhatRenderShRendersNow(t *testing.T) {
	checkRenderedIsCurrent(t, prometheusRuleFile, "--prometheusrule")
}

func TestChartRendersThePrometheusRuleOnlyWhenEnabled(t *testing.T) {
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			for _, tc := range []struct {
				set  []string
				want bool
			}{
				{nil, false},
				{[]string{"prometheusRule.enabled=true", "prometheusRule.labels.release=prometheus"}, true},
			} {
				out, err := template(t, bin, tc.set...)
				if err != nil {
					t.Fatal(err)
				}
				objs, err := parseObjects(out)
				if err != nil {
					t.Fatal(err)
				}
				o := objs.find("PrometheusRule", release)
				if (o != nil) != tc.want {
					t.Fatalf("with %v: PrometheusRule rendered: %v, want %v", tc.set, o != nil, tc.want)
				}
				if o == nil {
					continue
				}
				if got := o.GetLabels()["release"]; got != "prometheus" {
					t.Errorf("with %v: label release=%q, want prometheus", tc.set, got)
				}
				if _, err := helm(t, bin, "lint", "--strict", chartDir, "--set", strings.Join(tc.set, ",")); err != nil {
					t.Errorf("with %v: %v", tc.set, err)
				}
			}
		})
	}
}

// requiredAlerts are the alerts the issue asks for.
var requiredAlerts = []string{
	"ImageSwapperCopiesFailing",
	"ImageSwapperScansPendingTooLong",
	"ImageSwapperStoreWritesFailing",
	"ImageSwapperCertificateExpiringSoon",
	"ImageSwapperSyncDrift",
	"ImageSwapperSyncStale",
}

func TestEveryAlertHasARunbookAndAUnitTest(t *testing.T) {
	var groups ruleGroups
	readYAML(t, rulesFile, &groups)
	anchors := headingAnchors(t, operationsDoc)
	tested := alertsWithExpectedFirings(t)
	var names []string
	for _, r := range groups.rules() {
		if r.Alert == "" {
			continue
		}
		names = append(names, r.Alert)
		if s := r.Labels["severity"]; !slices.Contains([]string{"info", "warning", "critical"}, s) {
			t.Errorf("%s: severity %q, want info, warning or critical", r.Alert, s)
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, key)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q is not under %s", r.Alert, r.Annotations["runbook_url"], runbookBase)
		case !anchors[anchor]:
			t.Errorf("%s: runbook_url anchor #%s is no heading of docs/operations.md", r.Alert, anchor)
		}
		if !tested[r.Alert] {
			t.Errorf("%s: no test in %s expects it to fire", r.Alert, rulesTestFile)
		}
	}
	for _, want := range requiredAlerts {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s among %v", want, names)
		}
	}
}

// alertsWithExpectedFirings are the alerts that some test of rules_test.yaml
// expects to fire.
func alertsWithExpectedFirings(t *testing.T) map[string]bool {
	t.Helper()
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	data, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	out := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				out[a.Alertname] = true
			}
		}
	}
	return out
}

// headingAnchors are the anchors GitHub gives the headings of a Markdown
// file: lower case, spaces to -, punctuation other than - and _ dropped.
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	inFence := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func TestDashboardParses(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: want both", d.Title, d.UID)
	}
	var variables []string
	for _, v := range d.Templating.List {
		variables = append(variables, v.Name)
	}
	for _, want := range []string{"datasource", "namespace", "job"} {
		if !slices.Contains(variables, want) {
			t.Errorf("dashboard variables %v lack %s", variables, want)
		}
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24 columns", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					x, y = 1<<30, 1<<30 // once a pair
				} else {
					taken[cell{x, y}] = p.Title
				}
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			if !strings.Contains(target.Expr, `namespace=~"$namespace", job=~"$job"`) {
				t.Errorf("panel %q, query %s: %s does not select $namespace and $job", p.Title, target.RefID, target.Expr)
			}
		}
	}
	// What the issue asks the dashboard to show.
	exprs := strings.Join(dashboardExprs(d), "\n")
	for _, want := range []string{
		"histogram_quantile(0.5, sum by (le, endpoint) (rate(image_swapper_admission_duration_seconds_bucket",
		"histogram_quantile(0.99, sum by (le, endpoint) (rate(image_swapper_admission_duration_seconds_bucket",
		"image_swapper_decisions_total", "image_swapper_denials_total", "image_swapper_copies_total",
		"image_swapper_scans_total", "image_swapper_scan_verdicts_total", "image_swapper_scan_queue_depth",
		"image_swapper_ledger_records_written_total", "image_swapper_ledger_records_dropped_total",
		"image_swapper_sync_drifted_tags",
	} {
		if !strings.Contains(exprs, want) {
			t.Errorf("no dashboard query has %s", want)
		}
	}
}

func dashboardExprs(d dashboard) []string {
	var out []string
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			out = append(out, target.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

// metricName matches the names of image-swapper's metrics and of the
// client library's process collector in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:image_swapper|process|go)_[a-z0-9_]+\b`)

func TestMonitoringUsesOnlyMetricsTheCodeRegisters(t *testing.T) {
	registered := registeredMetrics(t)
	var groups ruleGroups
	readYAML(t, rulesFile, &groups)
	uses := map[string][]string{}
	for _, r := range groups.rules() {
		for _, m := range metricName.FindAllString(r.Expr, -1) {
			uses[m] = append(uses[m], "alert "+r.Alert)
		}
	}
	for _, e := range dashboardExprs(readDashboard(t)) {
		for _, m := range metricName.FindAllString(e, -1) {
			uses[m] = append(uses[m], "dashboard")
		}
	}
	if len(uses) == 0 {
		t.Fatal("no metric names found in the rules and the dashboard")
	}
	for m, where := range uses {
		if !registered[m] {
			t.Errorf("%s (used by %s) is not a series the code exposes", m, strings.Join(slices.Compact(where), ", "))
		}
	}
}

func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range declaredMetrics(t) {
		if !bytes.Contains(doc, []byte("`"+d.name)) {
			t.Errorf("%s (%s) is not in docs/operations.md", d.name, d.file)
		}
	}
}

// registeredMetrics are the series names /metrics can serve: every metric
// declared in the Go sources (histograms with their _bucket, _sum and
// _count series) and the Go and process collectors of the webhook's
// registry. The declarations are checked against the registries that can
// be built here, so that the source scan cannot miss one.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, d := range declaredMetrics(t) {
		out[d.name] = true
		if d.kind == "Histogram" || d.kind == "Summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[d.name+suffix] = true
			}
		}
	}
	reg := prometheus.NewRegistry()
	tagsync.NewMetrics(reg)
	claim.New(nil, claim.Options{Registerer: reg})
	for _, c := range []prometheus.Collector{webhook.NewMetrics().Registry(), reg} {
		for _, name := range describedNames(c) {
			if strings.HasPrefix(name, "image_swapper_") {
				if !out[name] {
					t.Errorf("%s is registered but the scan of the Go sources did not find its declaration", name)
				}
				continue
			}
			out[name] = true // the Go and process collectors
		}
	}
	return out
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// describedNames are the names of the metrics c describes.
func describedNames(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

type declaredMetric struct {
	name, kind, file string
}

// declaration matches a metric's options in Go source: the kind of its
// Opts and its Name.
var declaration = regexp.MustCompile(`(Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"(image_swapper_[a-z0-9_]+)"`)

// anyName matches every Name field that names one of the metrics.
var anyName = regexp.MustCompile(`Name:\s*"image_swapper_`)

// declaredMetrics are the metrics declared in the non-test Go files of
// internal/ and cmd/.
func declaredMetrics(t *testing.T) []declaredMetric {
	t.Helper()
	var out []declaredMetric
	for _, root := range []string{"../../internal", "../../cmd"} {
		err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			found := declaration.FindAllSubmatch(src, -1)
			for _, m := range found {
				out = append(out, declaredMetric{name: string(m[2]), kind: string(m[1]), file: path})
			}
			// A Name: field the pattern does not see (other field order,
			// a constant) would go unchecked.
			if n := len(anyName.FindAll(src, -1)); n != len(found) {
				t.Errorf("%s: %d Name: \"image_swapper_...\" fields, %d in the form Kind"+"Opts{Name: ...}: extend the pattern", path, n, len(found))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatal("no metric declarations found in internal/ and cmd/")
	}
	t.Logf("%d metrics declared", len(out))
	return out
}
