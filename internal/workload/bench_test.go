package workload

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time. Benchmarks report it
// per operation beside the wall time, because on a shared machine the wall
// time also counts the time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// genStream renders n documents the way a large Helm release does: 40%
// Deployments of about 60 lines (init container, sidecar, probes, env,
// comments, quoted and unquoted images), 30% Services and 30% ConfigMaps
// that embed the chart's values (so they mention "image").
func genStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		b.WriteString("---\n")
		switch i % 10 {
		case 0, 3, 6, 9:
			fmt.Fprintf(&b, `# Source: app/templates/deployment-%[1]d.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  namespace: team-%[2]d
  labels:
    app.kubernetes.io/name: app-%[1]d
    app.kubernetes.io/instance: release
    app.kubernetes.io/version: "1.%[2]d.0"
    helm.sh/chart: app-1.0.0
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%[1]d
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%[1]d
        app.kubernetes.io/instance: release
      annotations:
        checksum/config: 5f4dcc3b5aa765d61d8327deb882cf99
    spec:
      serviceAccountName: app-%[1]d
      initContainers:
        - name: migrate
          image: "ghcr.io/example/migrate:v%[2]d.0.1" # run once
          args: ["--up"]
      containers:
        - name: app
          image: docker.io/example/app-%[1]d:1.%[2]d.0
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: LOG_LEVEL
              value: "info"
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
          readinessProbe:
            httpGet:
              path: /ready
              port: http
          resources:
            limits: {cpu: 500m, memory: 256Mi}
            requests: {cpu: 100m, memory: 128Mi}
        - name: proxy
          image: 'envoyproxy/envoy:v1.31.%[2]d'
          args: [--config-path, /etc/envoy/envoy.yaml]
      volumes:
        - name: config
          configMap:
            name: app-%[1]d
`, i, i%7)
		case 1, 4, 7:
			fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: app-%[1]d
  namespace: team-%[2]d
  labels:
    app.kubernetes.io/name: app-%[1]d
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: http
      protocol: TCP
      name: http
  selector:
    app.kubernetes.io/name: app-%[1]d
`, i, i%7)
		default:
			fmt.Fprintf(&b, `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-%[1]d
  namespace: team-%[2]d
data:
  LOG_FORMAT: json
  FEATURE_FLAGS: "a,b,c"
  values.yaml: |
    # the chart's values, kept for reference: not image fields
    image:
      repository: docker.io/example/app-%[1]d
      tag: "1.%[2]d.0"
    server:
      port: 8080
    upstreams:
      - name: backend
        url: http://backend-%[1]d:8080
`, i, i%7)
		}
	}
	return b.Bytes()
}

// BenchmarkParseRewriteStream is the package's share of `image-swapper
// rewrite` over a 10,000-document stream: split, parse in parallel, list the
// images, rewrite every one of them and concatenate the output.
func BenchmarkParseRewriteStream(b *testing.B) {
	benchmarkStream(b, mustLocator(b, testdataKinds...))
}

// BenchmarkParseRewriteStreamYAMLParserOnly is the same without the fast
// parser, for comparison.
func BenchmarkParseRewriteStreamYAMLParserOnly(b *testing.B) {
	l := mustLocator(b, testdataKinds...)
	l.slowOnly = true
	benchmarkStream(b, l)
}

func benchmarkStream(b *testing.B, l *Locator) {
	stream := genStream(10000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var images int
	var out []byte
	cpu := cpuTime()
	for b.Loop() {
		ps, err := l.ParseStream(stream)
		if err != nil {
			b.Fatal(err)
		}
		out = make([]byte, 0, len(stream)+len(stream)/8)
		images = 0
		for _, p := range ps {
			imgs := p.Images()
			var nv map[int]string
			if len(imgs) > 0 {
				nv = make(map[int]string, len(imgs))
				for i, img := range imgs {
					nv[i] = "registry.example.com/mirror/" + img.Value
				}
			}
			images += len(imgs)
			raw, err := p.Rewrite(nv)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, raw...)
		}
	}
	if len(out) <= len(stream) {
		b.Fatalf("the output (%d bytes) is not longer than the input (%d bytes): nothing was rewritten", len(out), len(stream))
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(images), "images/op")
}

// BenchmarkParseDeployment is one Deployment of the stream, parsed alone.
func BenchmarkParseDeployment(b *testing.B) {
	doc := Split(genStream(1))[0]
	l := mustLocator(b)
	b.SetBytes(int64(len(doc.Raw)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := l.Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRewriteDeployment rewrites the three images of a parsed
// Deployment.
func BenchmarkRewriteDeployment(b *testing.B) {
	doc := Split(genStream(1))[0]
	p, err := mustLocator(b).Parse(doc)
	if err != nil {
		b.Fatal(err)
	}
	nv := map[int]string{}
	for i, img := range p.Images() {
		nv[i] = "registry.example.com/mirror/" + img.Value
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Rewrite(nv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplit splits the 10,000-document stream.
func BenchmarkSplit(b *testing.B) {
	stream := genStream(10000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		Split(stream)
	}
}

// genCRD renders a CustomResourceDefinition of about size bytes whose schema
// mentions images everywhere, like the Prometheus operator's.
func genCRD(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    controller-gen.kubebuilder.io/version: v0.16.1
  name: prometheuses.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names:
    kind: Prometheus
    plural: prometheuses
  scope: Namespaced
  versions:
  - name: v1
    schema:
      openAPIV3Schema:
        properties:
`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `          field%[1]d:
            description: |-
              Container image name for field %[1]d. More info: https://kubernetes.io/docs/concepts/containers/images
              This field is optional to allow higher level config management to default or override
              container images in workload controllers like Deployments and StatefulSets.
            properties:
              image:
                description: "Image to use: it's [optional]"
                type: string
              imagePullPolicy:
                enum: [Always, Never, IfNotPresent]
                type: string
            type: object
`, i)
	}
	return b.Bytes()
}

// BenchmarkParseLargeCRD parses a 500 kB CRD: the kind sniffer skips the
// YAML parser for it.
func BenchmarkParseLargeCRD(b *testing.B) {
	doc := Document{Raw: genCRD(500 << 10)}
	l := mustLocator(b, testdataKinds...)
	b.SetBytes(int64(len(doc.Raw)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Parse(doc)
		if err != nil || len(p.Images()) != 0 {
			b.Fatal(err)
		}
	}
}
