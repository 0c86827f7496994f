package selfsigned

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the Secret. tls.crt and tls.key are what a kubernetes.io/tls
// Secret holds; ca.crt is the trust bundle (the caBundle of the webhook
// configurations) and ca.key the key of its first certificate, the CA that
// signs new serving certificates.
const (
	keyCACert = "ca.crt"
	keyCAKey  = "ca.key"
	keyCert   = corev1.TLSCertKey
	keyKey    = corev1.TLSPrivateKeyKey
)

// material is what the Secret holds, parsed.
type material struct {
	// bundle is the trust bundle: the signing CA first, then CAs that
	// are still trusted during a rotation.
	bundle    []*x509.Certificate
	bundlePEM []byte
	caKey     crypto.Signer
	caKeyPEM  []byte
	// cert is the serving certificate with its key; Leaf is set.
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

// signer is the CA that signs new serving certificates.
func (m *material) signer() *x509.Certificate { return m.bundle[0] }

// leaf is the serving certificate.
func (m *material) leaf() *x509.Certificate { return m.cert.Leaf }

// issuerIndex is the position in the bundle of the CA that signed the
// serving certificate, or -1 when no CA of the bundle did.
func (m *material) issuerIndex() int {
	for i, ca := range m.bundle {
		if m.leaf().CheckSignatureFrom(ca) == nil {
			return i
		}
	}
	return -1
}

// data is the Secret's data for m; other keys of the Secret are kept by
// the caller.
func (m *material) data() map[string][]byte {
	return map[string][]byte{
		keyCACert: m.bundlePEM,
		keyCAKey:  m.caKeyPEM,
		keyCert:   m.certPEM,
		keyKey:    m.keyPEM,
	}
}

// parseMaterial reads the Secret's data; an error names the key that is
// missing or wrong, and means that the Secret is replaced.
func parseMaterial(data map[string][]byte) (*material, error) {
	for _, k := range []string{keyCACert, keyCAKey, keyCert, keyKey} {
		if len(data[k]) == 0 {
			return nil, fmt.Errorf("%s is missing or empty", k)
		}
	}
	m := &material{
		bundlePEM: data[keyCACert],
		caKeyPEM:  data[keyCAKey],
		certPEM:   data[keyCert],
		keyPEM:    data[keyKey],
	}
	var err error
	if m.bundle, err = parseCertificates(m.bundlePEM); err != nil {
		return nil, fmt.Errorf("%s: %w", keyCACert, err)
	}
	for i, ca := range m.bundle {
		if !ca.IsCA {
			return nil, fmt.Errorf("%s: certificate %d (%s) is not a CA", keyCACert, i+1, ca.Subject)
		}
	}
	if m.caKey, err = parsePrivateKey(m.caKeyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", keyCAKey, err)
	}
	if !publicKeyEqual(m.caKey.Public(), m.signer().PublicKey) {
		return nil, fmt.Errorf("%s does not belong to the first certificate of %s", keyCAKey, keyCACert)
	}
	cert, err := tls.X509KeyPair(m.certPEM, m.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", keyCert, keyKey, err)
	}
	if cert.Leaf == nil {
		// X509KeyPair sets Leaf unless GODEBUG x509keypairleaf=0.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", keyCert, err)
		}
	}
	m.cert = &cert
	return m, nil
}

// parseCertificates reads every CERTIFICATE block of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// parsePrivateKey reads a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign certificates", key)
	}
	return s, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// encodeCertificates is the PEM bundle of certs, in order.
func encodeCertificates(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// bundleHas reports whether the PEM bundle holds ca.
func bundleHas(bundle []byte, ca *x509.Certificate) bool {
	certs, err := parseCertificates(bundle)
	if err != nil {
		return false
	}
	for _, c := range certs {
		if c.Equal(ca) {
			return true
		}
	}
	return false
}
