package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// CertificateSource supplies the serving certificate. FileCertificate reads
// it from files that something else rotates (cert-manager, a mounted
// Secret); a source that creates its own CA and keeps the webhook
// configurations' caBundle current is another implementation.
type CertificateSource interface {
	// GetCertificate returns the certificate for a handshake. It is used
	// as tls.Config.GetCertificate, so it is called for every handshake
	// and must be cheap and safe for concurrent use.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Run keeps the certificate current until ctx ends.
	Run(ctx context.Context)
}

// FileCertificate serves a certificate and key read from PEM files, and
// reloads them when either file changes. A pair that does not load (half
// written, or a key that does not match) leaves the previous one in use,
// so a rotation never fails a handshake.
type FileCertificate struct {
	certFile, keyFile string
	opts              FileCertificateOptions
	cert              atomic.Pointer[tls.Certificate]
	// stamp is what the files looked like when last read; only Run
	// touches it after construction.
	stamp [2]fileStamp
}

// FileCertificateOptions tune a FileCertificate; the zero value is usable.
type FileCertificateOptions struct {
	// Interval between checks of the files (default 1s). A check is two
	// stat calls; the files are read only when one changed.
	Interval time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics
}

// fileStamp identifies a version of a file cheaply. Kubernetes updates a
// mounted Secret by swapping a symlink to new files, and os.Stat follows
// the link, so the stamp changes with the content.
type fileStamp struct {
	modTime time.Time
	size    int64
}

// NewFileCertificate loads the pair once; an error names the files and
// what is wrong with them.
func NewFileCertificate(certFile, keyFile string, opts FileCertificateOptions) (*FileCertificate, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &FileCertificate{certFile: certFile, keyFile: keyFile, opts: opts}
	stamp, err := f.stat()
	if err != nil {
		return nil, err
	}
	cert, err := f.load()
	if err != nil {
		return nil, err
	}
	f.stamp = stamp
	f.use(cert)
	return f, nil
}

// GetCertificate implements CertificateSource.
func (f *FileCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert.Load(), nil
}

// Run implements CertificateSource: it checks the files every Interval.
func (f *FileCertificate) Run(ctx context.Context) { every(ctx, f.opts.Interval, f.check) }

// check reloads the pair when a file changed since it was last read.
func (f *FileCertificate) check() {
	stamp, err := f.stat()
	if err != nil {
		// A rotation may remove and recreate a file; the next check sees it.
		f.opts.Logger.Warn("serving certificate files cannot be read; still serving the previous certificate", "error", err)
		return
	}
	if stamp == f.stamp {
		return
	}
	// Remember the stamp even when the load fails: the files change again
	// when the rotation completes, and a bad pair is reported once.
	f.stamp = stamp
	cert, err := f.load()
	if err != nil {
		f.count("failure")
		f.opts.Logger.Error("new serving certificate not loaded; still serving the previous one", "error", err)
		return
	}
	f.use(cert)
	f.count("success")
	f.opts.Logger.Info("serving certificate reloaded", "cert", f.certFile, "subject", cert.Leaf.Subject.String(), "notAfter", cert.Leaf.NotAfter)
}

func (f *FileCertificate) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, name := range [2]string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("serving certificate: %w", err)
		}
		out[i] = fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

func (f *FileCertificate) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate %s with key %s: %w", f.certFile, f.keyFile, err)
	}
	if cert.Leaf == nil {
		// LoadX509KeyPair fills Leaf unless GODEBUG x509keypairleaf=0.
		return nil, errors.New("serving certificate " + f.certFile + ": no leaf certificate parsed")
	}
	return &cert, nil
}

func (f *FileCertificate) use(cert *tls.Certificate) {
	f.cert.Store(cert)
	if f.opts.Metrics != nil {
		f.opts.Metrics.certNotAfter.Set(float64(cert.Leaf.NotAfter.Unix()))
	}
}

func (f *FileCertificate) count(result string) {
	if f.opts.Metrics != nil {
		f.opts.Metrics.certReloads.WithLabelValues(result).Inc()
	}
}
