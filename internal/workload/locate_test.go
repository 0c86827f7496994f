package workload

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
)

func TestImagesOfEachKind(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "field container path=value"
	}{
		{"a Pod lists its containers, init containers, ephemeral containers and image volumes", `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: init, image: alpine:3.20}
  containers:
  - name: app
    image: nginx:1.27
  ephemeralContainers:
  - name: dbg
    image: busybox:1.36
  volumes:
  - name: data
    image: {reference: quay.io/x/data:v1, pullPolicy: IfNotPresent}
  - name: tmp
    emptyDir: {}
`, []string{
			"containers app spec.containers[0].image=nginx:1.27",
			"initContainers init spec.initContainers[0].image=alpine:3.20",
			"ephemeralContainers dbg spec.ephemeralContainers[0].image=busybox:1.36",
			"volumes  spec.volumes[0].image.reference=quay.io/x/data:v1",
		}},
		{"a PodTemplate's images are under template.spec", `
apiVersion: v1
kind: PodTemplate
template:
  spec:
    containers: [{name: a, image: a:1}]
`, []string{"containers a template.spec.containers[0].image=a:1"}},
		{"a ReplicationController's images are under spec.template.spec", `
apiVersion: v1
kind: ReplicationController
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1"}},
		{"a ReplicaSet of extensions/v1beta1 is matched by kind alone", `
apiVersion: extensions/v1beta1
kind: ReplicaSet
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1"}},
		{"a Deployment of apps/v1beta2 is matched by kind alone", `
apiVersion: apps/v1beta2
kind: Deployment
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1"}},
		{"a StatefulSet's images are under spec.template.spec", `
apiVersion: apps/v1
kind: StatefulSet
spec: {template: {spec: {containers: [{name: a, image: a:1}], initContainers: [{name: b, image: b:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1", "initContainers b spec.template.spec.initContainers[0].image=b:1"}},
		{"a DaemonSet's images are under spec.template.spec", `
apiVersion: apps/v1
kind: DaemonSet
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1"}},
		{"a Job's images are under spec.template.spec", `
apiVersion: batch/v1
kind: Job
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`, []string{"containers a spec.template.spec.containers[0].image=a:1"}},
		{"a CronJob's images are under spec.jobTemplate.spec.template.spec", `
apiVersion: batch/v1beta1
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}}}
`, []string{"containers a spec.jobTemplate.spec.template.spec.containers[0].image=a:1"}},
		{"a List's items are objects of their own, recursively", `
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: s}}
- {apiVersion: v1, kind: Pod, spec: {containers: [{name: a, image: a:1}]}}
- apiVersion: v1
  kind: List
  items:
  - {kind: Job, spec: {template: {spec: {containers: [{name: b, image: b:1}]}}}}
`, []string{
			"containers a items[1].spec.containers[0].image=a:1",
			"containers b items[2].items[0].spec.template.spec.containers[0].image=b:1",
		}},
		{"any kind ending in List with items is a list", `
apiVersion: v1
kind: PodList
items:
- {kind: Pod, spec: {containers: [{name: a, image: a:1}]}}
`, []string{"containers a items[0].spec.containers[0].image=a:1"}},
		{"an aliased image and a merged container are found with their own paths", `
kind: Pod
spec:
  containers:
  - &c {name: a, image: &i a:1}
  - {name: b, image: *i}
  - {<<: *c, name: m}
`, []string{
			"containers a spec.containers[0].image=a:1",
			"containers b spec.containers[1].image=a:1",
			"containers m spec.containers[2].image=a:1",
		}},
		{"an explicit key wins over a merged one", `
kind: Pod
spec:
  containers:
  - &c {name: a, image: a:1}
  - {<<: *c, name: b, image: b:1}
`, []string{"containers a spec.containers[0].image=a:1", "containers b spec.containers[1].image=b:1"}},
		{"the last of duplicate keys wins, as in Kubernetes decoders", `
kind: Pod
spec:
  containers:
  - {name: a, image: first:1, image: last:1}
`, []string{"containers a spec.containers[0].image=last:1"}},
		{"null, empty and non-scalar images are not images", `
kind: Pod
spec:
  containers:
  - {name: a, image: null}
  - {name: b, image: ""}
  - {name: c, image: {repository: x}}
  - {name: d}
  - name: e
    image:
`, nil},
		{"an escaped key spelling image is found", `{"kind": "Pod", "spec": {"containers": [{"name": "a", "imag\u0065": "a:1"}]}}`,
			[]string{"containers a spec.containers[0].image=a:1"}},
	}
	l := mustLocator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, l, tt.yaml)
			var got []string
			for _, img := range p.Images() {
				got = append(got, img.Field+" "+img.Container+" "+img.Path+"="+img.Value)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("images:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestImageCarriesObjectAndPodLabels(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		object    Object
		podLabels map[string]string
	}{
		{"a Deployment's pod labels come from its template", `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, team: a}
  annotations: {owner: "team-a"}
spec:
  template:
    metadata:
      labels: {app: web, version: "1.0"}
    spec:
      containers: [{name: web, image: nginx}]
`, Object{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Namespace: "shop",
			Labels: map[string]string{"app": "web", "team": "a"}, Annotations: map[string]string{"owner": "team-a"}},
			map[string]string{"app": "web", "version": "1.0"}},
		{"a Pod's pod labels are its own labels", `
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec: {containers: [{name: c, image: nginx}]}
`, Object{APIVersion: "v1", Kind: "Pod", Name: "p", Labels: map[string]string{"app": "p"}},
			map[string]string{"app": "p"}},
		{"a template without labels has nil pod labels", `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {template: {spec: {containers: [{name: c, image: nginx}]}}}
`, Object{APIVersion: "batch/v1", Kind: "Job", Name: "j"}, nil},
		{"labels merged from an anchor count, explicit ones win", `
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {<<: {app: base, tier: web}, app: p}}
spec: {containers: [{name: c, image: nginx}]}
`, Object{APIVersion: "v1", Kind: "Pod", Name: "p", Labels: map[string]string{"app": "p", "tier": "web"}},
			map[string]string{"app": "p", "tier": "web"}},
		{"a List item's object is the item", `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: inner, namespace: ns}
  spec: {containers: [{name: c, image: nginx}]}
`, Object{APIVersion: "v1", Kind: "Pod", Name: "inner", Namespace: "ns"}, nil},
	}
	l := mustLocator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs := mustParse(t, l, tt.yaml).Images()
			if len(imgs) != 1 {
				t.Fatalf("got %d images, want 1", len(imgs))
			}
			o := imgs[0].Object
			if o.APIVersion != tt.object.APIVersion || o.Kind != tt.object.Kind || o.Name != tt.object.Name || o.Namespace != tt.object.Namespace ||
				!maps.Equal(o.Labels, tt.object.Labels) || !maps.Equal(o.Annotations, tt.object.Annotations) {
				t.Errorf("object = %+v, want %+v", o, tt.object)
			}
			if !maps.Equal(imgs[0].PodLabels, tt.podLabels) || (imgs[0].PodLabels == nil) != (tt.podLabels == nil) {
				t.Errorf("pod labels = %v, want %v", imgs[0].PodLabels, tt.podLabels)
			}
		})
	}
}

func TestDocumentsWithoutImages(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"an empty document", ""},
		{"a separator only", "---\n"},
		{"comments only", "# nothing here\n# image: nginx\n"},
		{"a scalar document", "image\n"},
		{"a sequence document", "- image: nginx\n"},
		{"a mapping without kind", "image: nginx\nspec: {containers: [{image: nginx}]}\n"},
		{"a ConfigMap whose data mentions images", "apiVersion: v1\nkind: ConfigMap\ndata:\n  image: nginx\n  values.yaml: |\n    image: nginx\n"},
		{"a kind that carries no images", "apiVersion: v1\nkind: Secret\nspec: {template: {spec: {containers: [{image: nginx}]}}}\n"},
		{"a Deployment without template", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: image}\n"},
		{"a Pod whose containers are not a list", "kind: Pod\nspec: {containers: {image: nginx}}\n"},
		{"a null kind", "kind: ~\nspec: {containers: [{image: nginx}]}\n"},
	}
	l := mustLocator(t, testdataKinds...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, l, tt.yaml)
			if imgs := p.Images(); len(imgs) != 0 {
				t.Errorf("images = %+v, want none", imgs)
			}
		})
	}
}

func TestImagesOfTestdata(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"ingress-nginx.yaml", []string{
			"3 Deployment/ingress-nginx-controller containers controller spec.template.spec.containers[0].image=registry.k8s.io/ingress-nginx/controller:v1.11.2@sha256:d5f8217feeac4887cb1ed21f27c2674e58be06bd8f5184cacea2a69abaf78dce",
			"4 Job/ingress-nginx-admission-create containers create spec.template.spec.containers[0].image=registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.4.3@sha256:a320a50cc91bd15fd2d6fa6de58bd98c1bd64b9a6f926ce23a600d87043455a3",
		}},
		{"prometheus.yaml", []string{
			"0 StatefulSet/prometheus-server containers prometheus-server-configmap-reload spec.template.spec.containers[0].image=quay.io/prometheus-operator/prometheus-config-reloader:v0.76.0",
			"0 StatefulSet/prometheus-server containers prometheus-server spec.template.spec.containers[1].image=quay.io/prometheus/prometheus:v2.54.1",
			"0 StatefulSet/prometheus-server initContainers init-chown-data spec.template.spec.initContainers[0].image=busybox:1.36",
			"1 DaemonSet/prometheus-prometheus-node-exporter containers node-exporter spec.template.spec.containers[0].image=quay.io/prometheus/node-exporter:v1.8.2",
		}},
		{"cert-manager.yaml", []string{
			"0 Deployment/cert-manager containers cert-manager-controller spec.template.spec.containers[0].image=quay.io/jetstack/cert-manager-controller:v1.15.3",
			"0 Deployment/cert-manager containers log-shipper spec.template.spec.containers[1].image=fluent/fluent-bit:3.1.7",
			"0 Deployment/cert-manager initContainers wait-for-api spec.template.spec.initContainers[0].image=docker.io/bitnami/kubectl:1.31",
		}},
		{"batch.yaml", []string{
			"0 CronJob/backup containers dump spec.jobTemplate.spec.template.spec.containers[0].image=postgres:16.4-alpine",
			"0 CronJob/backup initContainers prepare spec.jobTemplate.spec.template.spec.initContainers[0].image=alpine:3.20",
			"1 Job/migrate containers migrate spec.template.spec.containers[0].image=ghcr.io/example/app-migrations:2024.09.1",
			"2 Pod/debug-target containers web spec.containers[0].image=nginx:1.27",
			"2 Pod/debug-target ephemeralContainers debugger-x7k2 spec.ephemeralContainers[0].image=busybox:1.36",
			"2 Pod/debug-target volumes  spec.volumes[0].image.reference=quay.io/example/models:v1",
			"3 PodTemplate/worker-template containers worker template.spec.containers[0].image=example.com:5000/team/worker:latest",
			"4 ReplicationController/legacy containers legacy spec.template.spec.containers[0].image=k8s.gcr.io/echoserver:1.4",
			"5 ReplicaSet/frontend containers php-redis spec.template.spec.containers[0].image=gcr.io/google_samples/gb-frontend:v3",
		}},
		{"lists.yaml", []string{
			"0 Deployment/api containers api items[1].spec.template.spec.containers[0].image=docker.io/library/golang:1.23",
			"0 Pod/nested containers c items[2].items[0].spec.containers[0].image=redis:7",
			"1 Deployment/one containers one items[0].spec.template.spec.containers[0].image=nginx:1.27",
			"1 Deployment/two containers two items[1].spec.template.spec.containers[0].image=nginx:1.26",
		}},
		{"json.yaml", []string{
			"0 Deployment/compact containers app spec.template.spec.containers[0].image=nginx:1.27",
			"0 Deployment/compact containers side spec.template.spec.containers[1].image=envoyproxy/envoy:v1.31.0",
			"1 Pod/pretty containers main spec.containers[0].image=ghcr.io/example/app:1.2.3",
			"1 Pod/pretty initContainers init spec.initContainers[0].image=busybox:1.36",
		}},
		{"custom.yaml", []string{
			"0 Prometheus/k8s custom  spec.image=quay.io/prometheus/prometheus:v2.54.1",
			"0 Prometheus/k8s custom  spec.containers[0].image=quay.io/prometheus-operator/prometheus-config-reloader:v0.76.0",
			"1 Rollout/canary custom  spec.template.spec.containers[0].image=argoproj/rollouts-demo:blue",
			"1 Rollout/canary custom  spec.sidecars[0].image=example.com/sidecar:1",
			"1 Rollout/canary custom  spec.sidecars[1].image=example.com/sidecar:2",
			"1 Rollout/canary custom  spec.annotations['example.com/image']=example.com/annotated:3",
		}},
		{"anchors.yaml", []string{
			"0 Deployment/anchored containers web spec.template.spec.containers[0].image=nginx:1.27",
			"0 Deployment/anchored containers web-copy spec.template.spec.containers[1].image=nginx:1.27",
			"0 Deployment/anchored containers merged spec.template.spec.containers[2].image=nginx:1.27",
			"0 Deployment/anchored initContainers tagged spec.template.spec.initContainers[0].image=alpine:3.20",
			"0 Deployment/anchored initContainers literal spec.template.spec.initContainers[1].image=busybox:1.36",
		}},
	}
	l := mustLocator(t, testdataKinds...)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			stream, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := l.ParseStream(stream)
			if err != nil {
				t.Fatal(err)
			}
			got := imageList(ps...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("images:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCustomKinds(t *testing.T) {
	tests := []struct {
		name   string
		custom []config.CustomKind
		yaml   string
		want   []string // "path=value"
	}{
		{"the kind regex is anchored",
			[]config.CustomKind{{Kind: "Prometheus", Images: []string{".spec.image"}}},
			"kind: PrometheusRule\nspec: {image: x:1}\n", nil},
		{"the apiVersion regex is anchored",
			[]config.CustomKind{{Kind: "Prometheus", APIVersion: `monitoring\.coreos\.com/v1`, Images: []string{".spec.image"}}},
			"apiVersion: monitoring.coreos.com/v1beta1\nkind: Prometheus\nspec: {image: x:1}\n", nil},
		{"an empty apiVersion regex matches any apiVersion",
			[]config.CustomKind{{Kind: "Prom.*", Images: []string{"{$.spec.image}"}}},
			"apiVersion: whatever/v9\nkind: Prometheus\nspec: {image: x:1}\n", []string{"spec.image=x:1"}},
		{"a wildcard walks a sequence and an index picks one item",
			[]config.CustomKind{{Kind: "App", Images: []string{"{.spec.components[*].image}", ".spec.sidecars[0].image", ".spec.sidecars[-1].image"}}},
			"kind: App\nspec:\n  components: [{image: a:1}, {name: none}, {image: b:1}]\n  sidecars: [{image: s:1}, {image: s:2}, {image: s:3}]\n",
			[]string{"spec.components[0].image=a:1", "spec.components[2].image=b:1", "spec.sidecars[0].image=s:1", "spec.sidecars[2].image=s:3"}},
		{"a wildcard over a mapping walks its values",
			[]config.CustomKind{{Kind: "App", Images: []string{".spec.images.*"}}},
			"kind: App\nspec:\n  images: {main: m:1, helper: h:1, weird.key: w:1}\n",
			[]string{"spec.images.main=m:1", "spec.images.helper=h:1", "spec.images['weird.key']=w:1"}},
		{"a sequence of image strings is selected with [*]",
			[]config.CustomKind{{Kind: "Cache", Images: []string{".spec.images[*]"}}},
			"kind: Cache\nspec:\n  images:\n  - a:1\n  - \"b:1\"\n",
			[]string{"spec.images[0]=a:1", "spec.images[1]=b:1"}},
		{"a custom path that repeats a built-in one is reported once",
			[]config.CustomKind{{Kind: "Deployment", Images: []string{".spec.template.spec.containers[*].image", ".spec.template.metadata.annotations['example.com/debug-image']"}}},
			"kind: Deployment\nspec:\n  template:\n    metadata: {annotations: {example.com/debug-image: d:1}}\n    spec: {containers: [{name: c, image: c:1}]}\n",
			[]string{"spec.template.spec.containers[0].image=c:1", "spec.template.metadata.annotations['example.com/debug-image']=d:1"}},
		{"custom kinds apply to List items",
			[]config.CustomKind{{Kind: "App", Images: []string{".spec.image"}}},
			"kind: List\nitems:\n- {kind: App, spec: {image: a:1}}\n",
			[]string{"items[0].spec.image=a:1"}},
		{"missing and null fields select nothing",
			[]config.CustomKind{{Kind: "App", Images: []string{".spec.image", ".spec.missing.image", ".spec.list[5].image"}}},
			"kind: App\nspec: {image: null, list: []}\n", nil},
		{"a document without the word image is still read for a custom field",
			[]config.CustomKind{{Kind: "App", Images: []string{".spec.repo"}}},
			"kind: App\nspec: {repo: a:1}\n",
			[]string{"spec.repo=a:1"}},
		{"a custom field name with a space turns the pre-check off",
			[]config.CustomKind{{Kind: "App", Images: []string{".spec['main repo']"}}},
			"kind: App\nspec: {main repo: a:1}\n",
			[]string{"spec['main repo']=a:1"}},
		{"a backslash escapes a dot in a field name",
			[]config.CustomKind{{Kind: "App", Images: []string{`.metadata.annotations.example\.com/image`}}},
			"kind: App\nmetadata: {annotations: {example.com/image: a:1}}\n",
			[]string{"metadata.annotations['example.com/image']=a:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLocator(t, tt.custom...)
			var got []string
			for _, img := range mustParse(t, l, tt.yaml).Images() {
				got = append(got, img.Path+"="+img.Value)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("images:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCustomPathSelectingACollectionIsAnError(t *testing.T) {
	l := mustLocator(t, config.CustomKind{Kind: "App", Images: []string{".spec.containers[*]"}})
	_, err := l.Parse(Document{Index: 4, Raw: []byte("kind: App\nmetadata: {name: a}\nspec: {containers: [{image: x}]}\n")})
	want := `document 4: App "a": workloads.custom[0].images[0] ".spec.containers[*]" selects a mapping at spec.containers[0]; expected an image string`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestNewLocatorErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name   string
		custom []config.CustomKind
		want   []string
	}{
		{"an empty kind", []config.CustomKind{{Images: []string{".spec.image"}}}, []string{"workloads.custom[0].kind", "must not be empty"}},
		{"a bad kind regex", []config.CustomKind{{Kind: "Prom[", Images: []string{".spec.image"}}}, []string{"workloads.custom[0].kind", `"Prom["`, "missing closing ]"}},
		{"a bad apiVersion regex", []config.CustomKind{{Kind: "A", Images: []string{".a"}}, {Kind: "B", APIVersion: "(v1", Images: []string{".a"}}}, []string{"workloads.custom[1].apiVersion", "missing closing )"}},
		{"no images", []config.CustomKind{{Kind: "A"}}, []string{"workloads.custom[0].images", "at least one JSONPath"}},
		{"recursive descent", []config.CustomKind{{Kind: "A", Images: []string{".spec.image", "{..image}"}}}, []string{"workloads.custom[0].images[1]", `"{..image}"`, "recursive descent"}},
		{"a filter", []config.CustomKind{{Kind: "A", Images: []string{".spec.containers[?(@.name=='x')].image"}}}, []string{"workloads.custom[0].images[0]", "filter"}},
		{"a slice", []config.CustomKind{{Kind: "A", Images: []string{".spec.containers[0:2].image"}}}, []string{"slices"}},
		{"range", []config.CustomKind{{Kind: "A", Images: []string{"{range .items[*]}{.image}{end}"}}}, []string{"range"}},
		{"a whole-object path", []config.CustomKind{{Kind: "A", Images: []string{"{$}"}}}, []string{"whole object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLocator(tt.custom)
			if err == nil {
				t.Fatal("NewLocator succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseSyntaxErrorNamesDocumentAndStreamLine(t *testing.T) {
	stream := "kind: Pod\nspec: {containers: [{image: a}]}\n---\n# second\nkind: Pod\nspec:\n  containers:\n  - image: b\n    name: broken: twice\n"
	l := mustLocator(t)
	_, err := l.ParseStream([]byte(stream))
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SyntaxError", err)
	}
	if se.Document != 1 || se.Line != 9 {
		t.Errorf("error at document %d line %d, want document 1 line 9 (%v)", se.Document, se.Line, err)
	}
	if !strings.HasPrefix(err.Error(), "document 1: line 9: ") {
		t.Errorf("message %q does not start with the document and line", err)
	}
}

func TestParseAllKeepsOrderAndReportsEveryFailure(t *testing.T) {
	var docs []Document
	for i := range 100 {
		raw := "kind: Pod\nspec: {containers: [{name: c, image: img-" + string(rune('a'+i%26)) + "}]}\n"
		if i == 17 || i == 71 {
			raw = "kind: Pod\nimage: [unclosed\n"
		}
		docs = append(docs, Document{Index: i, Raw: []byte(raw)})
	}
	ps, err := mustLocator(t).ParseAll(docs)
	if err == nil || !strings.Contains(err.Error(), "document 17:") || !strings.Contains(err.Error(), "document 71:") {
		t.Fatalf("err = %v, want failures of documents 17 and 71", err)
	}
	for i, p := range ps {
		if i == 17 || i == 71 {
			if p != nil {
				t.Errorf("document %d failed but has a result", i)
			}
			continue
		}
		if p == nil || p.Document().Index != i || p.Images()[0].Value != "img-"+string(rune('a'+i%26)) {
			t.Errorf("document %d: result out of order", i)
		}
	}
}

func TestAliasBombIsRefused(t *testing.T) {
	// Each level doubles the items: 2^30 pods if aliases were expanded.
	var b strings.Builder
	b.WriteString("kind: List\nx0: &l0 {kind: Pod, spec: {containers: [{name: c, image: a}]}}\n")
	for i := 1; i <= 30; i++ {
		b.WriteString("x" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " {kind: List, items: [*l" + strconv.Itoa(i-1) + ", *l" + strconv.Itoa(i-1) + "]}\n")
	}
	b.WriteString("items: [*l30]\n")
	_, err := mustLocator(t).Parse(Document{Raw: []byte(b.String())})
	if err == nil || !strings.Contains(err.Error(), "too many nodes") {
		t.Errorf("err = %v, want a refusal", err)
	}
}

func TestMergeKeyBombIsBounded(t *testing.T) {
	// Each level merges the previous one twice: 2^40 mappings if merges
	// were followed without bound. The lookup of "image" gives up instead.
	var b strings.Builder
	b.WriteString("kind: Pod\nm0: &m0 {name: x}\n")
	for i := 1; i <= 40; i++ {
		b.WriteString("m" + strconv.Itoa(i) + ": &m" + strconv.Itoa(i) + " {<<: [*m" + strconv.Itoa(i-1) + ", *m" + strconv.Itoa(i-1) + "]}\n")
	}
	b.WriteString("metadata: {labels: *m40}\nspec: {containers: [*m40]}\n")
	p := mustParse(t, mustLocator(t), b.String())
	if n := len(p.Images()); n != 0 {
		t.Errorf("found %d images, want none", n)
	}
}

func TestParseRefusesADocumentHoldingTwo(t *testing.T) {
	_, err := mustLocator(t).Parse(Document{Index: 2, Line: 10, Raw: []byte("kind: Pod\nspec: {containers: [{image: a}]}\n---\nkind: Pod\n")})
	var se *SyntaxError
	if !errors.As(err, &se) || se.Document != 2 || se.Line != 12 || !strings.Contains(se.Msg, "second YAML document") {
		t.Errorf("err = %v, want a second-document error at line 12", err)
	}
}

func TestParseAcceptsAnEmptyTrailingDocument(t *testing.T) {
	p := mustParse(t, mustLocator(t), "kind: Pod\nspec: {containers: [{image: a}]}\n---\n# nothing\n")
	if len(p.Images()) != 1 {
		t.Errorf("images = %v, want one", p.Images())
	}
}
