package selfsigned

import (
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"
)

// action is what a Sync does to the Secret.
type action int

const (
	// keep the Secret as it is.
	keep action = iota
	// fresh replaces everything: a new CA alone in the bundle and a
	// serving certificate it signs. Only when nothing usable exists.
	fresh
	// rotateCA puts a new signing CA first in the bundle and keeps the
	// old ones; the serving certificate stays until the switch.
	rotateCA
	// issue signs a new serving certificate with the signing CA.
	issue
	// prune leaves only the signing CA in the bundle.
	prune
)

func (a action) String() string {
	return [...]string{"keep", "fresh", "rotate-ca", "issue", "prune"}[a]
}

// decision is an action and why.
type decision struct {
	action action
	reason string
}

// timing is what decide needs from the options.
type timing struct {
	switchDelay, overlap time.Duration
}

// decide is the rotation's state machine. It depends only on the
// material, the time and whether the webhook configurations already carry
// the signing CA, so that every replica, whenever it looks, takes the same
// step; each step moves forward only, so replicas whose clocks differ a
// little do not undo one another.
//
// A CA rotation has three steps: the new CA joins the bundle (rotateCA);
// once the webhook configurations carry it, and switchDelay has passed for
// every API server to see them, the serving certificate switches to one
// the new CA signs (issue); overlap after that, when every replica has
// read the new serving certificate, the old CA leaves the bundle (prune).
func decide(m *material, now time.Time, want names, published bool, t timing) decision {
	ca := m.signer()
	leaf := m.leaf()
	signer := m.issuerIndex()
	switch {
	case !now.Before(ca.NotAfter):
		return decision{fresh, fmt.Sprintf("the CA expired at %s", ca.NotAfter.UTC().Format(time.RFC3339))}
	case signer < 0:
		return decision{issue, "no CA of the bundle signed the serving certificate"}
	case !now.Before(renewAt(ca)):
		return decision{rotateCA, fmt.Sprintf("the CA is due for renewal since %s (it expires at %s)", renewAt(ca).UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339))}
	case signer > 0:
		// A CA rotation waits for the switch.
		if !now.Before(leaf.NotAfter) {
			return decision{issue, "the serving certificate expired during a CA rotation"}
		}
		if !published {
			return decision{keep, "waiting for the webhook configurations to carry the new CA"}
		}
		if now.Before(created(ca).Add(t.switchDelay)) {
			return decision{keep, "waiting for the API servers to see the new CA"}
		}
		return decision{issue, "switching to a serving certificate of the new CA"}
	case !now.Before(renewAt(leaf)):
		return decision{issue, fmt.Sprintf("the serving certificate is due for renewal since %s (it expires at %s)", renewAt(leaf).UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))}
	case !want.match(leaf):
		return decision{issue, fmt.Sprintf("the serving certificate is for %s, want %s", certNames(leaf), want)}
	case len(m.bundle) > 1 && !now.Before(created(leaf).Add(t.overlap)):
		return decision{prune, "every replica serves a certificate of the new CA"}
	}
	return decision{keep, "current"}
}

// match reports whether leaf names exactly n.
func (n names) match(leaf *x509.Certificate) bool {
	return sameStrings(n.dns, leaf.DNSNames) && sameIPs(n.ips, leaf.IPAddresses)
}

func (n names) String() string {
	return certNames(&x509.Certificate{DNSNames: n.dns, IPAddresses: n.ips})
}

func certNames(c *x509.Certificate) string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return fmt.Sprintf("%q", out)
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func sameIPs(a, b []net.IP) bool {
	str := func(ips []net.IP) []string {
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = ip.String()
		}
		return out
	}
	return sameStrings(str(a), str(b))
}

// apply carries out d on m (nil for fresh) and returns the new material.
func apply(d decision, m *material, now time.Time, o *Options, want names) (*material, error) {
	next := &material{}
	if m != nil {
		*next = *m
	}
	switch d.action {
	case fresh, rotateCA:
		ca, key, err := newCA(now, o.CALifetime, "image-swapper webhook CA "+o.Namespace+"/"+o.Service)
		if err != nil {
			return nil, err
		}
		keyPEM, err := encodeKey(key)
		if err != nil {
			return nil, err
		}
		next.bundle = []*x509.Certificate{ca}
		if d.action == rotateCA {
			// The old CAs stay trusted until the serving certificate
			// switches and every replica has it; expired ones are useless.
			for _, old := range m.bundle {
				if now.Before(old.NotAfter) {
					next.bundle = append(next.bundle, old)
				}
			}
		}
		next.bundlePEM = encodeCertificates(next.bundle)
		next.caKey, next.caKeyPEM = key, keyPEM
		if d.action == rotateCA {
			return next, nil
		}
		fallthrough
	case issue:
		certPEM, keyPEM, pair, err := newServing(now, o.CertLifetime, want, next.signer(), next.caKey)
		if err != nil {
			return nil, err
		}
		next.certPEM, next.keyPEM, next.cert = certPEM, keyPEM, pair
	case prune:
		next.bundle = []*x509.Certificate{m.signer()}
		next.bundlePEM = encodeCertificates(next.bundle)
	default:
		return nil, fmt.Errorf("selfsigned: no change to apply for %s", d.action)
	}
	return next, nil
}
