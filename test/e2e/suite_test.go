package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// serverNamespace is where image-swapper would run in a cluster; its
// webhook configurations exclude it, and the server leaves it alone.
const serverNamespace = "image-swapper-system"

// serverUser is the identity the image-swapper processes use, with the
// permissions the issue names: namespaces to read their labels, and
// secrets and service accounts for the pull credentials of a Pod.
const serverUser = "image-swapper"

// suite is what every scenario shares: the control plane, the registries
// and the image-swapper binary.
type suite struct {
	kube kubernetes.Interface
	// kubeconfig is the file image-swapper serve connects with, as
	// serverUser.
	kubeconfig string
	binary     string
	// src holds the images Pods name; dst is the mirror (target).
	src, dst *testenv.DockerRegistry
	plane    *testenv.ControlPlane
}

// newSuite starts the control plane and the registries and builds the
// binary; everything stops when t ends.
func newSuite(t *testing.T) *suite {
	assets := testenv.KubeAssets(t)
	testenv.RequireRegistry(t)

	start := time.Now()
	// The build overlaps the control plane's start.
	type built struct {
		path string
		err  error
	}
	binc := make(chan built, 1)
	go func() {
		p, err := testenv.BuildImageSwapper()
		binc <- built{p, err}
	}()

	s := &suite{plane: testenv.StartControlPlane(t, assets)}
	t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))
	s.src = testenv.StartDockerRegistry(t, testenv.RegistryOptions{AllowDelete: true})
	s.dst = testenv.StartDockerRegistry(t, testenv.RegistryOptions{AllowDelete: true})

	cfg := s.plane.Config()
	cfg.WarningHandlerWithContext = warningRecorder{}
	s.kube = kubernetes.NewForConfigOrDie(cfg)
	s.kubeconfig = s.serverKubeconfig(t)
	s.namespace(t, serverNamespace, nil)

	b := <-binc
	if b.err != nil {
		t.Fatal(b.err)
	}
	s.binary = b.path
	t.Logf("registries up and image-swapper built in %s", time.Since(start).Round(time.Millisecond))
	return s
}

// serverKubeconfig provisions serverUser with least privilege and writes
// its kubeconfig.
func (s *suite) serverKubeconfig(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "image-swapper-e2e"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets", "serviceaccounts"}, Verbs: []string{"get"}},
			// As the chart: Events on the Pod's owner, the ReplicaSet that
			// leads to a Deployment, and a Pod without an owner, for its UID.
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			// As the chart's <release>-policies ClusterRole.
			{APIGroups: []string{"policy.image-swapper.io"}, Resources: []string{"clusterimagepolicies", "imagepolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"policy.image-swapper.io"}, Resources: []string{"clusterimagepolicies/status", "imagepolicies/status"}, Verbs: []string{"update"}},
			// The leader Lease, whose holder runs the background loops.
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		},
	}
	if _, err := s.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "image-swapper-e2e"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: serverUser}},
	}
	if _, err := s.kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user, err := s.plane.Env.AddUser(envtest.User{Name: serverUser}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", serverUser, err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// namespace creates a namespace with labels, or adds the labels to one
// that exists (kube-system).
func (s *suite) namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns, err := s.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if _, err := s.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating namespace %s: %v", name, err)
		}
		return
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	if _, err := s.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("labelling namespace %s: %v", name, err)
	}
}
