package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultReloadInterval is how often, at most, ServerTLSConfig checks
// whether the certificate files changed.
const DefaultReloadInterval = 10 * time.Second

// TLSOptions names the PEM files of a server's TLS setup.
type TLSOptions struct {
	// CertFile and KeyFile hold the server certificate (with its chain)
	// and private key. Both or neither must be set.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the CAs that client certificates must
	// be signed by: every client must then present a valid certificate
	// (mutual TLS). It needs CertFile and KeyFile.
	ClientCAFile string
	// ReloadInterval is how often, at most, a handshake checks whether
	// CertFile or KeyFile changed (size or modification time) and, if so,
	// loads them again (default DefaultReloadInterval). A pair that fails
	// to load is logged and the previous one kept. ClientCAFile is read
	// once.
	ReloadInterval time.Duration
	// Logger receives reload events. Nil discards them.
	Logger *slog.Logger
}

// Enabled reports whether TLS is asked for at all.
func (o TLSOptions) Enabled() bool {
	return o.CertFile != "" || o.KeyFile != "" || o.ClientCAFile != ""
}

// Validate reports whether the set of files given is usable.
func (o TLSOptions) Validate() error {
	switch {
	case (o.CertFile == "") != (o.KeyFile == ""):
		return errors.New("auth: TLS needs both a certificate file and a key file")
	case o.ClientCAFile != "" && o.CertFile == "":
		return errors.New("auth: a client CA file (mutual TLS) needs a server certificate and key file")
	case o.ReloadInterval < 0:
		return fmt.Errorf("auth: TLS ReloadInterval %s is negative", o.ReloadInterval)
	}
	return nil
}

// ServerTLSConfig loads the files of o and returns a server TLS
// configuration (TLS 1.2 or later) whose certificate is reloaded when its
// files change, or nil and no error when o enables no TLS. With
// ClientCAFile, client certificates are required and verified. The
// returned configuration may be shared by several servers (clone it for
// each: http.Server and gRPC set NextProtos).
func ServerTLSConfig(o TLSOptions) (*tls.Config, error) {
	if !o.Enabled() {
		return nil, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	kp := &keyPair{o: o}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.get,
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("auth: client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth: client CA file %s holds no PEM certificate", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// keyPair is a certificate reloaded when its files change. Safe for
// concurrent use.
type keyPair struct {
	o TLSOptions

	mu        sync.Mutex // guards the fields below
	cert      *tls.Certificate
	stamp     [2]fileStamp // of CertFile and KeyFile when cert was loaded
	checkedAt time.Time
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func (s fileStamp) same(o fileStamp) bool { return s.size == o.size && s.modTime.Equal(o.modTime) }

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}

// load reads the pair. The caller holds mu or owns kp.
func (kp *keyPair) load() error {
	cs, err := stampOf(kp.o.CertFile)
	if err != nil {
		return fmt.Errorf("auth: TLS certificate: %w", err)
	}
	ks, err := stampOf(kp.o.KeyFile)
	if err != nil {
		return fmt.Errorf("auth: TLS key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(kp.o.CertFile, kp.o.KeyFile)
	if err != nil {
		return fmt.Errorf("auth: loading TLS certificate %s and key %s: %w", kp.o.CertFile, kp.o.KeyFile, err)
	}
	kp.cert, kp.stamp, kp.checkedAt = &cert, [2]fileStamp{cs, ks}, time.Now()
	return nil
}

// get returns the current certificate, reloading it first when the files
// changed and ReloadInterval has passed since the last check.
func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if time.Since(kp.checkedAt) < kp.o.ReloadInterval {
		return kp.cert, nil
	}
	kp.checkedAt = time.Now()
	cs, err1 := stampOf(kp.o.CertFile)
	ks, err2 := stampOf(kp.o.KeyFile)
	if err1 != nil || err2 != nil || (cs.same(kp.stamp[0]) && ks.same(kp.stamp[1])) {
		return kp.cert, nil
	}
	old := kp.cert
	if err := kp.load(); err != nil {
		kp.cert = old
		kp.o.Logger.Warn("TLS certificate changed but could not be loaded; keeping the previous one", "err", err)
		return kp.cert, nil
	}
	kp.o.Logger.Info("TLS certificate reloaded", "cert_file", kp.o.CertFile)
	return kp.cert, nil
}
