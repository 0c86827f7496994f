package ledger_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// TestThreeReplicasCopyAndScanOnce: three serve processes on one
// PostgreSQL; 100 concurrent admissions of one image that no replica has
// seen, spread across them, make one copy (one manifest PUT at the target,
// counted by a proxy in front of it) and, once the Pods run the mirror,
// one scan.
func TestThreeReplicasCopyAndScanOnce(t *testing.T) {
	pg := storetest.StartPostgres(t)
	f := newFixture(t, postgresStore, "IMAGE_SWAPPER_DATABASE_URL="+pg.DSN())
	src := registrytest.New(t)
	dst := registrytest.NewProxy(t, registrytest.New(t).Host)
	src.PushIndex(t, "shop/app:1.0", 2, "linux/amd64")
	scanner := testenv.NewReportScanner(t, "../../internal/scan/testdata/trivy/alpine-310.json")
	command, err := json.Marshal(scanner.Command)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`sourceRegistries: [%q]
targetRegistry: %q
mirroring:
  swap: wait
  waitBudget: 20s
store:
%s
security:
  scanning:
    enabled: true
    provider: trivy
    command: %s
    failOnCritical: true
`, src.Host, dst.Host, postgresStore, command)
	if err := os.WriteFile(f.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var servers []*server
	for i := range 3 {
		servers = append(servers, f.startServe(t, fmt.Sprintf("serve %d", i+1), 0))
	}
	source := src.Host + "/shop/app:1.0"
	target := dst.Host + "/" + strings.ReplaceAll(src.Host, ":", "_") + "/shop/app:1.0"

	// 100 admissions at once, round robin over the replicas.
	admit := func(endpoint, image string) []string {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			answers []string
		)
		for i := range 100 {
			s := servers[i%len(servers)]
			wg.Go(func() {
				a := post(s, endpoint, fmt.Sprintf("%08x-0000-4000-8000-%012x", len(endpoint), i), image)
				if a.err != nil {
					t.Error(a.err)
					return
				}
				mu.Lock()
				answers = append(answers, a.body)
				mu.Unlock()
			})
		}
		wg.Wait()
		return answers
	}

	dst.Reset()
	for _, a := range admit("/mutate", source) {
		if !strings.Contains(a, `"patch":`) {
			t.Errorf("an admission was not swapped (swap: wait waits for the copy): %.300s", a)
		}
	}
	if puts := countPuts(dst.Requests(), "/manifests/1.0"); puts != 1 {
		t.Errorf("the target got %d manifest PUTs of the tag, want exactly 1 for 100 admissions across 3 replicas", puts)
	}

	for _, a := range admit("/validate", target) {
		if !strings.Contains(a, `"allowed":true`) {
			t.Errorf("a Pod running the mirror was refused: %.300s", a)
		}
	}
	if runs := scanner.Runs(t); len(runs) != 1 {
		t.Errorf("the scanner ran %d times (%q), want once for 100 admissions across 3 replicas", len(runs), runs)
	}
}

// countPuts counts the PUT requests whose path ends in suffix.
func countPuts(reqs []string, suffix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "PUT ") && strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}

// review is the AdmissionReview of a Pod CREATE with one container.
func review(uid, image string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":%q,
"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
"namespace":"shop","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},
"object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"shop"},
"spec":{"containers":[{"name":"app","image":%q}]}}}}`, uid, image)
}
