package main

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestSecretLoaderReadsDockerConfigSecrets reads registry credentials from
// a Secret in a real kube-apiserver.
func TestSecretLoaderReadsDockerConfigSecrets(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	client := kubernetes.NewForConfigOrDie(cp.Config())
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "registry-creds"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	auths := []byte(`{"auths":{"registry.example.com":{"auth":"dTpw"}}}`)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "pull", Namespace: ns.Name}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: auths}},
		{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: ns.Name}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"x": []byte("y")}},
	} {
		if _, err := client.CoreV1().Secrets(ns.Name).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	load := secretLoader(client)
	got, err := load(ctx, ns.Name, "pull")
	if err != nil || string(got) != string(auths) {
		t.Fatalf("load(pull) = %q, %v; want the .dockerconfigjson", got, err)
	}
	if _, err := load(ctx, ns.Name, "opaque"); err == nil || !strings.Contains(err.Error(), "is of type Opaque, want kubernetes.io/dockerconfigjson") {
		t.Errorf("load(opaque): %v, want a type error", err)
	}
	if _, err := load(ctx, ns.Name, "missing"); err == nil || !strings.Contains(err.Error(), "reading Secret registry-creds/missing") {
		t.Errorf("load(missing): %v, want an error naming the Secret", err)
	}
}
