package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// kubeconfigYAML is a kubeconfig with one cluster per server, named after
// it, and a context of the same name; current is its current-context.
func kubeconfigYAML(current string, servers ...string) string {
	var clusters, contexts strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&clusters, "- name: %s\n  cluster: {server: \"https://%s.example:6443\"}\n", s, s)
		fmt.Fprintf(&contexts, "- name: %s\n  context: {cluster: %s, user: u}\n", s, s)
	}
	out := "apiVersion: v1\nkind: Config\nclusters:\n" + clusters.String() + "contexts:\n" + contexts.String() +
		"users:\n- name: u\n  user: {token: t}\n"
	if current != "" {
		out += "current-context: " + current + "\n"
	}
	return out
}

// simulatedInCluster is rest.InClusterConfig reading the service account
// token from tokenFile instead of /var/run/secrets/...: the environment
// variables decide, as they do in a Pod.
func simulatedInCluster(tokenFile string) func() (*rest.Config, error) {
	return func() (*rest.Config, error) {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, rest.ErrNotInCluster
		}
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		return &rest.Config{Host: "https://" + net.JoinHostPort(host, port), BearerToken: string(token)}, nil
	}
}

// TestKubeAccessLoadingOrder checks the order of kubectl and client-go:
// --kubeconfig, then $KUBECONFIG (merged), then in-cluster, then
// ~/.kube/config, and --context over current-context.
func TestKubeAccessLoadingOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag", kubeconfigYAML("flag", "flag"))
	envA := write("env-a", kubeconfigYAML("env-a", "env-a"))
	// env-b has two contexts and names another current-context: merged
	// after env-a, env-a's current-context wins and env-b's contexts join.
	envB := write("env-b", kubeconfigYAML("env-b2", "env-b1", "env-b2"))
	// split holds a context whose cluster and user are in splitCluster:
	// only merging makes it usable.
	splitContext := write("split-context", "apiVersion: v1\nkind: Config\ncurrent-context: split\ncontexts:\n- name: split\n  context: {cluster: split, user: u}\n")
	splitCluster := write("split-cluster", "apiVersion: v1\nkind: Config\nclusters:\n- name: split\n  cluster: {server: \"https://split.example:6443\"}\nusers:\n- name: u\n  user: {token: t}\n")
	envNoCurrent := write("env-no-current", kubeconfigYAML("", "env-b1"))
	home := write("home", kubeconfigYAML("home", "home", "home-other"))
	broken := write("broken", "clusters: [")
	missing := filepath.Join(dir, "missing")
	token := write("token", "sa-token")
	list := func(files ...string) string { return strings.Join(files, string(os.PathListSeparator)) }

	cases := []struct {
		name       string
		kubeconfig string // --kubeconfig
		context    string // --context
		env        string // $KUBECONFIG
		inCluster  bool   // KUBERNETES_SERVICE_HOST/PORT set
		home       string // ~/.kube/config
		wantHost   string
		wantFrom   string
		wantErr    []string
	}{
		{name: "--kubeconfig wins over everything", kubeconfig: flagFile, env: envA, inCluster: true, home: home,
			wantHost: "https://flag.example:6443", wantFrom: "--kubeconfig " + flagFile},
		{name: "KUBECONFIG wins over in-cluster and the home file", env: envA, inCluster: true, home: home,
			wantHost: "https://env-a.example:6443", wantFrom: "KUBECONFIG=" + envA},
		{name: "KUBECONFIG files are merged, the first current-context wins", env: list(envA, envB),
			wantHost: "https://env-a.example:6443"},
		{name: "--context picks a context from a later KUBECONFIG file", env: list(envA, envB), context: "env-b1",
			wantHost: "https://env-b1.example:6443"},
		{name: "a context in one KUBECONFIG file uses a cluster in another", env: list(splitContext, splitCluster),
			wantHost: "https://split.example:6443"},
		{name: "missing KUBECONFIG files are skipped", env: list(missing, envB),
			wantHost: "https://env-b2.example:6443"},
		{name: "in-cluster wins over the home file", inCluster: true, home: home,
			wantHost: "https://10.96.0.1:443", wantFrom: "in-cluster service account"},
		{name: "KUBECONFIG naming only missing files falls back to in-cluster", env: missing, inCluster: true, home: home,
			wantHost: "https://10.96.0.1:443"},
		{name: "the home file is last", home: home,
			wantHost: "https://home.example:6443"},
		{name: "--context picks a context of the home file", home: home, context: "home-other",
			wantHost: "https://home-other.example:6443"},
		{name: "--context passes over in-cluster for the home file", home: home, context: "home-other", inCluster: true,
			wantHost: "https://home-other.example:6443"},
		{name: "KUBECONFIG replaces the home file", env: missing, home: home,
			wantErr: []string{"KUBECONFIG=" + missing + " (missing or empty)", "(not read: KUBECONFIG is set)"}},
		{name: "with nothing, the error names all four sources",
			wantErr: []string{"--kubeconfig (not given)", "KUBECONFIG (not set)", "in-cluster (unable to load in-cluster configuration", filepath.Join(dir, "none") + " (missing or empty)", "--no-kube-api"}},
		{name: "a missing --kubeconfig is an error, not a fallback", kubeconfig: missing, env: envA, inCluster: true,
			wantErr: []string{"--kubeconfig " + missing, "no such file"}},
		{name: "an unknown --context is named", env: envA, context: "nope",
			wantErr: []string{"KUBECONFIG=" + envA, "--context nope", `context was not found for specified context: nope`}},
		{name: "KUBECONFIG without a current-context falls back to in-cluster", env: envNoCurrent, inCluster: true,
			wantHost: "https://10.96.0.1:443"},
		{name: "--context needs no current-context", env: envNoCurrent, context: "env-b1",
			wantHost: "https://env-b1.example:6443"},
		{name: "a broken KUBECONFIG file is named", env: broken, inCluster: true,
			wantErr: []string{"KUBECONFIG=" + broken, broken}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", c.env)
			host, port := "", ""
			if c.inCluster {
				host, port = "10.96.0.1", "443"
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", host)
			t.Setenv("KUBERNETES_SERVICE_PORT", port)
			homeFile := c.home
			if homeFile == "" {
				homeFile = filepath.Join(dir, "none")
			}
			a := kubeAccess{kubeconfig: c.kubeconfig, context: c.context, inCluster: simulatedInCluster(token), homeFile: homeFile}
			cfg, from, err := a.restConfig()
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("got %s from %s, want an error", cfg.Host, from)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not say %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != c.wantHost {
				t.Errorf("host %s (from %s), want %s", cfg.Host, from, c.wantHost)
			}
			if c.wantFrom != "" && from != c.wantFrom {
				t.Errorf("from %q, want %q", from, c.wantFrom)
			}
		})
	}
}

// adminKubeconfig writes the kubeconfig of a new system:masters user of
// cp, named name, and returns its path.
func adminKubeconfig(t *testing.T, cp *testenv.ControlPlane, name string) string {
	t.Helper()
	user, err := cp.Env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	writeTestFile(t, path, string(kc))
	return path
}
