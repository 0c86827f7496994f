package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// testLedger: serve records each image decision of both webhooks in its
// ledger (SQLite by default), and `image-swapper audit` reads them back
// while the server runs.
func (s *suite) testLedger(t *testing.T, sw *swapper) {
	const path = "e2e/ledger:1.0"
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	seedImage(t, src, dst)
	s.namespace(t, "ledger", map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	sw.waitCalledIn(t, s, "ledger")
	c := s.mustCreatePod(t, "ledger", newPod("ledger-1", nil, src))

	type record struct {
		UID, Operation, Endpoint, Namespace, Pod, Container, Image, Action, Target string
	}
	var got map[string]record
	err := testenv.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		cmd := exec.Command(s.binary, "audit", "--config", sw.configPath, "--namespace", "ledger", "-o", "json")
		cmd.Env = append(os.Environ(), sw.stateEnv())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("audit: %v: %s", err, stderr.String())
		}
		got = map[string]record{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var r record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("audit printed %q: %v", sc.Text(), err)
			}
			if r.Pod == "ledger-1" {
				got[r.Endpoint] = r
			}
		}
		if len(got) < 2 {
			return fmt.Errorf("the ledger has %d of the 2 records of ledger-1 (mutate and validate): %s", len(got), out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := got["mutate"]; m.Action != "swap" || m.Image != src || m.Target != dst || m.Container != "app" || m.Operation != "CREATE" || m.UID == "" {
		t.Errorf("mutate record = %+v; want a swap of %s to %s in container app", m, src, dst)
	}
	// Each webhook call is a request of its own, with its own uid.
	if v := got["validate"]; v.Image != dst || v.Action != "keep" || v.UID == "" || v.UID == got["mutate"].UID {
		t.Errorf("validate record = %+v; want %s judged and kept, under the validating request's uid", v, dst)
	}
	if stored := s.storedPod(t, "ledger", c.pod.Name); stored.Spec.Containers[0].Image != dst {
		t.Errorf("stored image is %s, want %s", stored.Spec.Containers[0].Image, dst)
	}
}

// testLease: a server that reaches the API takes the leader Lease in its
// namespace, whose holder runs the background loops (the sync of mirrored
// tags, PolicyReports); the servers of the suite share it, so one holds it.
func (s *suite) testLease(t *testing.T) {
	var holder string
	err := testenv.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		l, err := s.kube.CoordinationV1().Leases(serverNamespace).Get(context.Background(), "image-swapper-leader", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("the Lease has no holder")
		}
		holder = *l.Spec.HolderIdentity
		return nil
	})
	if err != nil {
		t.Fatalf("the leader Lease %s/image-swapper-leader: %v", serverNamespace, err)
	}
	t.Logf("the background loops run on %s", holder)
}
