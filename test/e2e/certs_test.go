package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// testCA is a certificate authority for webhook serving certificates; its
// certificate is the webhook configurations' caBundle.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, PEM encoded.
	PEM []byte
}

func newCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "image-swapper e2e CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Pool is a pool holding only the CA.
func (ca *testCA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// servingCert is a serving certificate and its key, PEM encoded.
type servingCert struct {
	CertPEM, KeyPEM []byte
	// Serial identifies the certificate in a TLS handshake.
	Serial *big.Int
}

// issue signs a serving certificate for 127.0.0.1 with a new key.
func (ca *testCA) issue() (*servingCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &servingCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Serial:  tmpl.SerialNumber,
	}, nil
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// certDir holds tls.crt and tls.key the way the kubelet mounts a Secret:
// both are symlinks into ..data, itself a symlink to a timestamped
// directory, and an update swaps ..data in one rename. A reader therefore
// never sees a new certificate with an old key.
type certDir struct {
	dir     string
	version int
}

// newCertDir creates dir's layout holding c.
func newCertDir(dir string, c *servingCert) (*certDir, error) {
	d := &certDir{dir: dir}
	if err := d.write(c); err != nil {
		return nil, err
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// CertFile and KeyFile are the paths to give the server.
func (d *certDir) CertFile() string { return filepath.Join(d.dir, "tls.crt") }

// KeyFile is the path of the key; see CertFile.
func (d *certDir) KeyFile() string { return filepath.Join(d.dir, "tls.key") }

// write puts c in a new version directory and points ..data at it.
func (d *certDir) write(c *servingCert) error {
	d.version++
	version := fmt.Sprintf("..v%d", d.version)
	if err := os.Mkdir(filepath.Join(d.dir, version), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, version, "tls.crt"), c.CertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, version, "tls.key"), c.KeyPEM, 0o600); err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.dir, "..data"))
}

// servedSerial makes a TLS handshake with addr, verifying against the CA,
// and returns the serial number of the certificate served.
func servedSerial(addr string, ca *testCA) (*big.Int, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}
