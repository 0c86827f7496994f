package selfsigned_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/selfsigned"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

const day = 24 * time.Hour

func TestFirstStartCreatesTheSecretAndPublishesTheBundle(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	clock := newClock()
	src := f.start(f.options(clock))

	sec := f.secret()
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", sec.Type, corev1.SecretTypeTLS)
	}
	for _, k := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key"} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("Secret has no %s", k)
		}
	}
	bundle := parseBundle(t, sec.Data["ca.crt"])
	if len(bundle) != 1 || !bundle[0].IsCA {
		t.Fatalf("ca.crt holds %q, want one CA", subjects(bundle))
	}
	ca := bundle[0]
	if k, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if err := f.bundleErr(sec.Data["ca.crt"]); err != nil {
		t.Error(err)
	}

	served := leaf(t, src)
	block, _ := pem.Decode(sec.Data["tls.crt"])
	if block == nil || !bytes.Equal(block.Bytes, served.Raw) {
		t.Error("the certificate served is not the Secret's tls.crt")
	}
	wantDNS := []string{f.serviceName(), f.serviceName() + ".cluster.local"}
	if !slices.Equal(served.DNSNames, wantDNS) || len(served.IPAddresses) != 1 || !served.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("serving certificate for %q %v, want %q [127.0.0.1]", served.DNSNames, served.IPAddresses, wantDNS)
	}
	now := clock.Now()
	if want := now.Add(selfsigned.DefaultCALifetime); absDuration(ca.NotAfter.Sub(want)) > time.Minute {
		t.Errorf("CA valid until %s, want %s", ca.NotAfter, want)
	}
	if want := now.Add(selfsigned.DefaultCertLifetime); absDuration(served.NotAfter.Sub(want)) > time.Minute {
		t.Errorf("serving certificate valid until %s, want %s", served.NotAfter, want)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range append(wantDNS, "127.0.0.1") {
		if _, err := served.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate does not verify for %s with the bundle: %v", name, err)
		}
	}
}

func TestTheAPIServerCallsTheWebhooksThroughThePublishedBundle(t *testing.T) {
	f := newFixture(t)
	clock := newClock()
	// The configurations do not exist yet when the server starts, as when
	// the chart creates them after the Deployment.
	src := f.start(f.options(clock))
	var calls admissions
	addr := serveTLS(t, src, &calls)
	f.url = "https://" + addr + "/admit"
	f.createConfigs(nil)
	if err := src.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := f.bundleErr(f.secret().Data["ca.crt"]); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr, f.serviceName(), f.publishedBundle(), clock.Now()); err != nil {
		t.Errorf("handshake with the published caBundle: %v", err)
	}

	// The API server dials the webhook URL and verifies the server with
	// each webhook's caBundle; the first tries may still see the empty
	// bundle of the configurations as created.
	i := 0
	eventually(t, "creating a ConfigMap through the four webhooks", func() error {
		i++
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("through-webhooks-%d", i)}}
		_, err := f.admin.CoreV1().ConfigMaps(f.namespace).Create(t.Context(), cm, metav1.CreateOptions{})
		return err
	})
	if n := calls.calls.Load(); n < 4 {
		t.Errorf("the webhooks were called %d times, want at least 4 (two mutating, two validating)", n)
	}
}

func TestASecondInstanceReusesTheSecret(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	clock := newClock()
	first := f.start(f.options(clock))
	before := f.secret()

	clock.Add(time.Hour)
	second := f.start(f.options(clock))
	if !leaf(t, second).Equal(leaf(t, first)) {
		t.Error("the second instance serves another certificate than the first")
	}
	if after := f.secret(); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the second instance wrote the Secret (resourceVersion %s, was %s)", after.ResourceVersion, before.ResourceVersion)
	}
}

func TestInstancesStartingTogetherAgreeOnOneSecret(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	clock := newClock()
	const replicas = 4
	sources := make([]*selfsigned.Source, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		client := f.replicaClient()
		wg.Go(func() { sources[i], errs[i] = selfsigned.New(t.Context(), client, f.options(clock)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	agree := func(stage string) *x509.Certificate {
		t.Helper()
		sec := f.secret()
		block, _ := pem.Decode(sec.Data["tls.crt"])
		for i, src := range sources {
			if !bytes.Equal(leaf(t, src).Raw, block.Bytes) {
				t.Errorf("%s: replica %d serves another certificate than the Secret's", stage, i)
			}
		}
		if err := f.bundleErr(sec.Data["ca.crt"]); err != nil {
			t.Errorf("%s: %v", stage, err)
		}
		return leaf(t, sources[0])
	}
	started := agree("after starting together")

	// The replicas renew together too: one write wins and the others
	// take its certificate.
	clock.Add(250 * day)
	for i, src := range sources {
		wg.Go(func() { errs[i] = src.Sync(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d renewing: %v", i, err)
		}
	}
	renewed := agree("after renewing together")
	if renewed.Equal(started) {
		t.Error("the serving certificate was not renewed two thirds through its life")
	}
	if renewed.Issuer.String() != started.Issuer.String() {
		t.Errorf("renewing the serving certificate changed the CA from %s to %s", started.Issuer, renewed.Issuer)
	}
}

func TestRotationBeforeExpiryKeepsEveryHandshakeWorking(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	clock := newClock()
	replicas := []*selfsigned.Source{f.start(f.options(clock)), f.start(f.options(clock))}
	var addrs []string
	for _, src := range replicas {
		addrs = append(addrs, serveTLS(t, src, &admissions{}))
	}
	// step moves the clock, lets the Lease holder (replica 0) rotate and
	// the other replica read the Secret, and checks that the replicas
	// serve the Secret's certificate and that a client trusting the
	// caBundle the API server holds completes a handshake with each.
	step := func(d time.Duration) (served *x509.Certificate, bundle []*x509.Certificate) {
		t.Helper()
		now := clock.Add(d)
		if err := replicas[0].Sync(t.Context()); err != nil {
			t.Fatalf("replica 0 at %s: %v", now, err)
		}
		before := f.secret().ResourceVersion
		if err := replicas[1].Refresh(t.Context()); err != nil {
			t.Fatalf("replica 1 at %s: %v", now, err)
		}
		if after := f.secret().ResourceVersion; after != before {
			t.Fatalf("at %s the replica without the Lease wrote the Secret", now)
		}
		sec := f.secret()
		if err := f.bundleErr(sec.Data["ca.crt"]); err != nil {
			t.Fatalf("at %s: %v", now, err)
		}
		published := f.publishedBundle()
		for i, addr := range addrs {
			got, err := handshake(addr, f.serviceName(), published, now)
			if err != nil {
				t.Fatalf("replica %d at %s: handshake with the published caBundle: %v", i, now, err)
			}
			if !got.Equal(leaf(t, replicas[0])) {
				t.Fatalf("replica %d at %s presents another certificate than replica 0", i, now)
			}
		}
		return leaf(t, replicas[0]), parseBundle(t, published)
	}

	served, bundle := step(0)
	ca1 := bundle[0]
	// The serving certificate (one year) is renewed two thirds through
	// its life by the same CA, until the CA (five years) is two thirds
	// through its own.
	for range 4 {
		prev := served
		served, bundle = step(245 * day)
		if served.Equal(prev) {
			t.Fatalf("at %s the serving certificate was not renewed", clock.Now())
		}
		if len(bundle) != 1 || !bundle[0].Equal(ca1) {
			t.Fatalf("at %s renewing the serving certificate changed the bundle to %q", clock.Now(), subjects(bundle))
		}
	}

	// The CA is due: the new CA joins the bundle, the old stays, and the
	// serving certificate is still the old CA's.
	old := served
	served, bundle = step(245 * day)
	if len(bundle) != 2 || !bundle[1].Equal(ca1) || bundle[0].Equal(ca1) {
		t.Fatalf("CA rotation: bundle %q, want the new CA then %s", subjects(bundle), ca1.Subject.CommonName)
	}
	ca2 := bundle[0]
	if !served.Equal(old) {
		t.Fatal("the serving certificate switched before the API servers could see the new CA")
	}
	served, _ = step(time.Minute)
	if !served.Equal(old) {
		t.Fatal("the serving certificate switched before the switch delay")
	}

	// After the delay the serving certificate switches; both CAs stay.
	served, bundle = step(selfsigned.DefaultSwitchDelay)
	if served.CheckSignatureFrom(ca2) != nil {
		t.Fatalf("after the switch delay the serving certificate is still signed by %s", served.Issuer.CommonName)
	}
	if len(bundle) != 2 {
		t.Fatalf("right after the switch the bundle is %q, want both CAs", subjects(bundle))
	}
	_, bundle = step(time.Hour)
	if len(bundle) != 2 {
		t.Fatalf("during the overlap the bundle is %q, want both CAs", subjects(bundle))
	}

	// After the overlap the old CA leaves.
	_, bundle = step(selfsigned.DefaultOverlap)
	if len(bundle) != 1 || !bundle[0].Equal(ca2) {
		t.Fatalf("after the overlap the bundle is %q, want only %s", subjects(bundle), ca2.Subject.CommonName)
	}
}

// TestOnlyTheLeaseHolderRotates: a replica that does not hold the Lease
// (Run, not Rotate) leaves a certificate due for renewal alone, and
// serves the one the holder's rotation wrote.
func TestOnlyTheLeaseHolderRotates(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	clock := newClock()
	holder := f.start(f.options(clock))
	opts := f.options(clock)
	opts.Interval = 20 * time.Millisecond
	other := f.start(opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		other.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	before := f.secret().ResourceVersion
	old := leaf(t, other)

	clock.Add(245 * day) // past two thirds of the serving certificate's year
	if err := other.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after := f.secret().ResourceVersion; after != before {
		t.Fatalf("the replica without the Lease wrote the Secret (resourceVersion %s, was %s)", after, before)
	}
	if !leaf(t, other).Equal(old) {
		t.Fatal("the replica without the Lease changed its certificate on its own")
	}

	if err := holder.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	renewed := leaf(t, holder)
	if renewed.Equal(old) {
		t.Fatal("the Lease holder did not renew the certificate due")
	}
	eventually(t, "the other replica serving the renewed certificate", func() error {
		if !leaf(t, other).Equal(renewed) {
			return fmt.Errorf("it serves the certificate valid until %s", leaf(t, other).NotAfter)
		}
		return nil
	})
}

func TestABundleChangedBySomeoneIsPutBack(t *testing.T) {
	f := newFixture(t)
	f.createConfigs(nil)
	opts := f.options(newClock())
	// Only the watch can put it back within the test.
	opts.Interval = time.Hour
	src := f.start(opts)
	want := f.secret().Data["ca.crt"]

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Rotate(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	api := f.admin.AdmissionregistrationV1()
	t.Run("a caBundle edited in place", func(t *testing.T) {
		m, err := api.MutatingWebhookConfigurations().Get(t.Context(), f.configName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.Webhooks[1].ClientConfig.CABundle = otherCA(t)
		if _, err := api.MutatingWebhookConfigurations().Update(t.Context(), m, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the caBundle put back", func() error { return f.bundleErr(want) })
	})
	t.Run("a configuration re-created by a helm upgrade", func(t *testing.T) {
		if err := api.ValidatingWebhookConfigurations().Delete(t.Context(), f.configName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.ValidatingWebhookConfigurations().Create(t.Context(), f.validatingConfig(nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the caBundle put back", func() error { return f.bundleErr(want) })
	})
}

func TestAnExistingSecretIsUsedOrReplaced(t *testing.T) {
	tests := []struct {
		name string
		// before prepares the namespace and returns the options of the
		// instance under test.
		before func(*fixture, *fakeClock) selfsigned.Options
		// check receives the Secret's trust bundle before and after.
		check func(t *testing.T, before, after []*x509.Certificate, served *x509.Certificate)
	}{
		{
			name: "a Secret without a usable certificate gets a new CA and certificate",
			before: func(f *fixture, clock *fakeClock) selfsigned.Options {
				f.createSecret(corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte("garbage"), "tls.key": []byte("garbage")})
				return f.options(clock)
			},
			check: func(t *testing.T, _, after []*x509.Certificate, served *x509.Certificate) {
				if len(after) != 1 || served.CheckSignatureFrom(after[0]) != nil {
					t.Errorf("bundle %q does not hold the serving certificate's CA", subjects(after))
				}
			},
		},
		{
			name: "a certificate for other names is reissued by the same CA",
			before: func(f *fixture, clock *fakeClock) selfsigned.Options {
				f.start(f.options(clock))
				opts := f.options(clock)
				opts.ExtraNames = []string{"webhook.example.com", "10.0.0.7"}
				return opts
			},
			check: func(t *testing.T, before, after []*x509.Certificate, served *x509.Certificate) {
				if len(after) != 1 || !after[0].Equal(before[0]) {
					t.Errorf("the CA changed from %q to %q", subjects(before), subjects(after))
				}
				if !slices.Contains(served.DNSNames, "webhook.example.com") || len(served.IPAddresses) != 1 || served.IPAddresses[0].String() != "10.0.0.7" {
					t.Errorf("serving certificate for %q %v, want webhook.example.com and 10.0.0.7 too", served.DNSNames, served.IPAddresses)
				}
			},
		},
		{
			name: "an expired CA is replaced",
			before: func(f *fixture, clock *fakeClock) selfsigned.Options {
				f.start(f.options(clock))
				clock.Add(selfsigned.DefaultCALifetime + day)
				return f.options(clock)
			},
			check: func(t *testing.T, before, after []*x509.Certificate, served *x509.Certificate) {
				if len(after) != 1 || after[0].Equal(before[0]) || served.CheckSignatureFrom(after[0]) != nil {
					t.Errorf("bundle %q after %q: want one new CA that signed the serving certificate", subjects(after), subjects(before))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createConfigs(nil)
			clock := newClock()
			opts := tt.before(f, clock)
			var before []*x509.Certificate
			if s, err := f.admin.CoreV1().Secrets(f.namespace).Get(t.Context(), selfsigned.DefaultSecretName, metav1.GetOptions{}); err == nil && len(s.Data["ca.crt"]) > 0 {
				before = parseBundle(t, s.Data["ca.crt"])
			}
			src := f.start(opts)
			sec := f.secret()
			tt.check(t, before, parseBundle(t, sec.Data["ca.crt"]), leaf(t, src))
			if err := f.bundleErr(sec.Data["ca.crt"]); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStartErrorsSayWhatIsWrong(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fixture) selfsigned.Options
		want  []string
	}{
		{
			name: "a Secret of another type is named with the type wanted",
			setup: func(f *fixture) selfsigned.Options {
				f.createSecret(corev1.SecretTypeOpaque, map[string][]byte{"x": []byte("y")})
				return f.options(newClock())
			},
			want: []string{"Secret " + "%NS%/image-swapper-tls", "type Opaque", "want kubernetes.io/tls"},
		},
		{
			name: "missing permissions are named",
			setup: func(f *fixture) selfsigned.Options {
				f.kube, _ = f.user(testenv.SharedControlPlane(f.t).Env, "no-rbac-"+f.namespace, false)
				return f.options(newClock())
			},
			want: []string{"forbidden", "get, create and update on Secret %NS%/image-swapper-tls", "docs/operations.md"},
		},
		{
			name: "an extra name that is neither a DNS name nor an IP address is named",
			setup: func(f *fixture) selfsigned.Options {
				opts := f.options(newClock())
				opts.ExtraNames = []string{"Not_A_Name"}
				return opts
			},
			want: []string{`"Not_A_Name"`, "want a DNS name or an IP address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createConfigs(nil)
			_, err := selfsigned.New(t.Context(), f.kube, tt.setup(f))
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "%NS%", f.namespace); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// createSecret creates the Secret before the Source starts.
func (f *fixture) createSecret(typ corev1.SecretType, data map[string][]byte) {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: selfsigned.DefaultSecretName, Namespace: f.namespace}, Type: typ, Data: data}
	if _, err := f.admin.CoreV1().Secrets(f.namespace).Create(f.t.Context(), s, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// otherCA is a CA certificate, PEM, that is not the Source's.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "someone else's CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
