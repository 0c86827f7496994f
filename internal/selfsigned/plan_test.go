package selfsigned

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// history is a Secret's life under the default options, step by step,
// each step built by apply exactly as Sync builds it.
type history struct {
	opts Options
	want names
	t0   time.Time
	// start is the Secret after the first start at t0.
	start *material
	// renewed has its serving certificate renewed at t0+1000 days.
	renewed *material
	// rotating has a new CA since t0+1220 days (due at about 1217), and
	// still the serving certificate of the old one.
	rotating *material
	// switched serves a certificate of the new CA since rotating+10m.
	switched *material
}

func newHistory(t *testing.T) *history {
	t.Helper()
	h := &history{opts: Options{Namespace: "ns"}, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := h.opts.complete(); err != nil {
		t.Fatal(err)
	}
	var err error
	if h.want, err = h.opts.names(); err != nil {
		t.Fatal(err)
	}
	step := func(a action, m *material, at time.Time) *material {
		t.Helper()
		next, err := apply(decision{action: a}, m, at, &h.opts, h.want)
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	h.start = step(fresh, nil, h.t0)
	h.renewed = step(issue, h.start, h.t0.Add(1000*day))
	h.rotating = step(rotateCA, h.renewed, h.t0.Add(1220*day))
	h.switched = step(issue, h.rotating, h.t0.Add(1220*day+10*time.Minute))
	return h
}

func TestDecide(t *testing.T) {
	h := newHistory(t)
	other := h.want
	other.dns = append(other.dns, "webhook.example.com")
	afterSwitch := h.t0.Add(1220*day + 10*time.Minute)
	tests := []struct {
		name      string
		m         *material
		at        time.Time
		want      names
		published bool
		action    action
	}{
		{"a new certificate is kept", h.start, h.t0.Add(time.Hour), h.want, true, keep},
		{"a serving certificate short of two thirds of its life is kept", h.start, h.t0.Add(243 * day), h.want, true, keep},
		{"a serving certificate two thirds through its life is renewed", h.start, h.t0.Add(244 * day), h.want, true, issue},
		{"an expired serving certificate is renewed", h.start, h.t0.Add(400 * day), h.want, true, issue},
		{"a serving certificate for other names is reissued", h.start, h.t0.Add(time.Hour), other, true, issue},
		{"a CA short of two thirds of its life is kept", h.renewed, h.t0.Add(1216 * day), h.want, true, keep},
		{"a CA two thirds through its life is rotated", h.renewed, h.t0.Add(1217 * day), h.want, true, rotateCA},
		{"an expired CA is replaced with everything", h.renewed, h.t0.Add(5*365*day + time.Minute), h.want, true, fresh},
		{"during a rotation the switch waits for the webhook configurations", h.rotating, h.t0.Add(1221 * day), h.want, false, keep},
		{"during a rotation the switch waits for the delay", h.rotating, h.t0.Add(1220*day + 4*time.Minute), h.want, true, keep},
		{"during a rotation the switch comes after the delay", h.rotating, h.t0.Add(1220*day + 5*time.Minute), h.want, true, issue},
		{"during a rotation names wait for the switch", h.rotating, h.t0.Add(1220*day + time.Minute), other, true, keep},
		{"during a rotation an expired serving certificate switches at once", h.rotating, h.t0.Add(1400 * day), h.want, false, issue},
		{"after the switch the old CA stays for the overlap", h.switched, afterSwitch.Add(23 * time.Hour), h.want, true, keep},
		{"after the overlap the old CA leaves", h.switched, afterSwitch.Add(24 * time.Hour), h.want, true, prune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.m, tt.at, tt.want, tt.published, timing{h.opts.SwitchDelay, h.opts.Overlap})
			if d.action != tt.action {
				t.Errorf("decide = %s (%s), want %s", d.action, d.reason, tt.action)
			}
			if d.reason == "" {
				t.Error("decide gave no reason")
			}
		})
	}
}

func TestDecideReissuesACertificateNoCAOfTheBundleSigned(t *testing.T) {
	a, b := newHistory(t), newHistory(t)
	mixed := *a.start
	mixed.cert, mixed.certPEM, mixed.keyPEM = b.start.cert, b.start.certPEM, b.start.keyPEM
	if d := decide(&mixed, a.t0.Add(time.Hour), a.want, true, timing{a.opts.SwitchDelay, a.opts.Overlap}); d.action != issue {
		t.Errorf("decide = %s (%s), want %s", d.action, d.reason, issue)
	}
}

func TestApplyRotatesInSteps(t *testing.T) {
	h := newHistory(t)
	ca1, ca2 := h.renewed.signer(), h.rotating.signer()

	if len(h.rotating.bundle) != 2 || !h.rotating.bundle[1].Equal(ca1) || ca2.Equal(ca1) {
		t.Fatalf("rotating the CA gave a bundle of %d, want the new CA then the old", len(h.rotating.bundle))
	}
	if !h.rotating.leaf().Equal(h.renewed.leaf()) {
		t.Error("rotating the CA changed the serving certificate")
	}
	if h.rotating.issuerIndex() != 1 {
		t.Errorf("during the rotation the serving certificate's CA is at %d in the bundle, want 1", h.rotating.issuerIndex())
	}
	if h.switched.issuerIndex() != 0 || len(h.switched.bundle) != 2 {
		t.Errorf("after the switch the serving certificate's CA is at %d of %d, want 0 of 2", h.switched.issuerIndex(), len(h.switched.bundle))
	}
	pruned, err := apply(decision{action: prune}, h.switched, h.t0.Add(1222*day), &h.opts, h.want)
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned.bundle) != 1 || !pruned.signer().Equal(ca2) || !bytes.Equal(pruned.certPEM, h.switched.certPEM) {
		t.Error("pruning kept more than the new CA or changed the serving certificate")
	}
	// Every step is a Secret that reads back the same.
	for name, m := range map[string]*material{"start": h.start, "rotating": h.rotating, "switched": h.switched, "pruned": pruned} {
		back, err := parseMaterial(m.data())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(back.bundlePEM, m.bundlePEM) || !back.leaf().Equal(m.leaf()) || len(back.bundle) != len(m.bundle) {
			t.Errorf("%s does not read back the same", name)
		}
	}
}

func TestServingCertificateNeverOutlivesItsCA(t *testing.T) {
	h := newHistory(t)
	late, err := apply(decision{action: issue}, h.start, h.t0.Add(5*365*day-30*day), &h.opts, h.want)
	if err != nil {
		t.Fatal(err)
	}
	if late.leaf().NotAfter.After(late.signer().NotAfter) {
		t.Errorf("serving certificate valid until %s, after its CA (%s)", late.leaf().NotAfter, late.signer().NotAfter)
	}
}

func TestParseMaterialNamesWhatIsWrong(t *testing.T) {
	h := newHistory(t)
	other := newHistory(t)
	tests := []struct {
		name string
		edit func(map[string][]byte)
		want string
	}{
		{"a missing CA bundle", func(d map[string][]byte) { delete(d, "ca.crt") }, "ca.crt is missing"},
		{"an empty serving key", func(d map[string][]byte) { d["tls.key"] = nil }, "tls.key is missing"},
		{"a CA bundle without certificates", func(d map[string][]byte) { d["ca.crt"] = []byte("garbage") }, "ca.crt: no PEM CERTIFICATE block"},
		{"a CA key of another CA", func(d map[string][]byte) { d["ca.key"] = other.start.caKeyPEM }, "ca.key does not belong"},
		{"a serving key of another certificate", func(d map[string][]byte) { d["tls.key"] = other.start.keyPEM }, "tls.crt and tls.key"},
		{"a serving certificate in the CA bundle", func(d map[string][]byte) { d["ca.crt"] = d["tls.crt"] }, "is not a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := h.start.data()
			tt.edit(d)
			_, err := parseMaterial(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseMaterial = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name  string
		extra []string
		dns   []string
		ips   []string
		err   string
	}{
		{"the Service's names come first", nil, []string{"svc.ns.svc", "svc.ns.svc.cluster.local"}, nil, ""},
		{"extra DNS names and IPs are added", []string{"webhook.example.com", "10.0.0.7", "::1"}, []string{"svc.ns.svc", "svc.ns.svc.cluster.local", "webhook.example.com"}, []string{"10.0.0.7", "::1"}, ""},
		{"a wildcard is a DNS name", []string{"*.example.com"}, []string{"svc.ns.svc", "svc.ns.svc.cluster.local", "*.example.com"}, nil, ""},
		{"an underscore is not", []string{"my_host"}, nil, nil, `extra name "my_host": want a DNS name or an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Namespace: "ns", Service: "svc", ExtraNames: tt.extra}
			n, err := o.names()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("names = %v, want an error saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ips []net.IP
			for _, s := range tt.ips {
				ips = append(ips, net.ParseIP(s))
			}
			if !sameStrings(n.dns, tt.dns) || !sameIPs(n.ips, ips) || n.dns[0] != tt.dns[0] {
				t.Errorf("names = %s, want %q %q", n, tt.dns, tt.ips)
			}
		})
	}
}

func TestOptionsRejectNegativeDurations(t *testing.T) {
	o := Options{Namespace: "ns", Overlap: -time.Hour}
	if err := o.complete(); err == nil || !strings.Contains(err.Error(), "overlap -1h0m0s: want a positive duration") {
		t.Errorf("complete = %v, want an error naming the overlap", err)
	}
	o = Options{}
	if err := o.complete(); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("complete = %v, want an error asking for the namespace", err)
	}
}
