package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"hazgate/internal/config"
)

// Names of the generated application certificate inside CertDir.
const (
	CertFileName = "hazgate-cert.der"
	KeyFileName  = "hazgate-key.pem"
)

// applicationCertificate returns the gateway's application instance
// certificate (DER) and key: the configured files, or the pair generated
// into CertDir on the first secure connect and reused ever after. A server
// trusts one certificate; making a new one at every start (gopcua #593)
// would have an operator re-trust the gateway after each restart.
func applicationCertificate(o config.OPCUA) ([]byte, *rsa.PrivateKey, error) {
	certPath, keyPath := o.CertFile, o.KeyFile
	generated := certPath == ""
	if generated {
		if o.CertDir == "" {
			return nil, nil, errors.New("no cert_file/key_file and no data directory to keep a generated certificate in")
		}
		certPath, keyPath = filepath.Join(o.CertDir, CertFileName), filepath.Join(o.CertDir, KeyFileName)
		_, cerr := os.Stat(certPath)
		_, kerr := os.Stat(keyPath)
		switch {
		case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
			if err := generateCertificate(certPath, keyPath, o.ApplicationURI); err != nil {
				return nil, nil, err
			}
		case errors.Is(cerr, fs.ErrNotExist) || errors.Is(kerr, fs.ErrNotExist):
			// Never replace half a pair silently: the server trusts the
			// old certificate, and a new one would be refused.
			return nil, nil, fmt.Errorf("found only one of %s and %s: restore the other, or remove both to generate a new certificate (which the servers must then trust again)", certPath, keyPath)
		}
	}
	cert, err := readCertificate(certPath)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := x509.ParseCertificate(cert)
	if err != nil {
		return nil, nil, fmt.Errorf("application certificate %s: %w", certPath, err)
	}
	if pub, ok := parsed.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, fmt.Errorf("application certificate %s does not belong to key %s", certPath, keyPath)
	}
	return cert, key, nil
}

// generateCertificate makes a self-signed RSA 2048 certificate for the
// application URI (OPC UA Part 6, 6.2.2: the URI is in subjectAltName)
// valid for 20 years, and writes it with its key: key first, each through
// a temporary file and a rename, so a crash leaves no half-written file.
func generateCertificate(certPath, keyPath, appURI string) error {
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return fmt.Errorf("application certificate folder: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate application key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	uri, err := url.Parse(appURI)
	if err != nil {
		return fmt.Errorf("application_uri %q: %w", appURI, err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hazgate", Organization: []string{"hazgate"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	if host != "" {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create application certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, der, 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readCertificate reads one certificate, PEM or DER, and returns its DER.
func readCertificate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %s: PEM block is %q, not CERTIFICATE", path, block.Type)
		}
		b = block.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return b, nil
}

// readKey reads an RSA private key, PEM (PKCS #1 or #8) or DER.
func readKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil {
		b = block.Bytes
	}
	if k, err := x509.ParsePKCS1PrivateKey(b); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: not an RSA key in PKCS #1 or #8", path)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s: %T, OPC UA needs RSA", path, k)
	}
	return rk, nil
}

// Thumbprint is a certificate's SHA-1 thumbprint in hex, as OPC UA tools
// show it.
func Thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// RejectedDirName is the folder inside CertDir where the certificate of
// a server the gateway did not trust is saved, so that the integrator can
// check it with the plant's OPC UA administrator and move it into
// trust_dir (the convention of UaExpert and node-opcua's pki/rejected).
const RejectedDirName = "rejected"

// trust checks the server's certificate before the gateway encrypts
// anything for it: it must equal the pinned server_cert_file, or be in
// trust_dir, or be signed by a CA certificate there; and no certificate
// revocation list in trust_dir, signed by a CA there, may list it. A
// certificate refused is saved in the rejected folder.
func (d *Driver) trust(serverCert []byte) error {
	if len(serverCert) == 0 {
		return errors.New("the server sent no certificate for a secure endpoint")
	}
	cert, err := x509.ParseCertificate(serverCert)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	who := fmt.Sprintf("server certificate %q (thumbprint %s)", cert.Subject.CommonName, Thumbprint(serverCert))
	err = d.checkTrust(cert, who)
	if err == nil {
		return nil
	}
	if saved, serr := d.saveRejected(cert); serr != nil {
		d.log.Debug("rejected server certificate not saved", "err", serr)
	} else if saved != "" {
		err = fmt.Errorf("%w; saved as %s", err, saved)
	}
	return err
}

func (d *Driver) checkTrust(cert *x509.Certificate, who string) error {
	if f := d.opts.ServerCertFile; f != "" {
		pinned, err := readCertificate(f)
		if err != nil {
			return err
		}
		if bytes.Equal(pinned, cert.Raw) {
			return nil // a pin is an explicit decision: no revocation check
		}
		if d.opts.TrustDir == "" {
			return fmt.Errorf("%s is not the pinned server_cert_file %s (thumbprint %s)", who, f, Thumbprint(pinned))
		}
	}
	dir := d.opts.TrustDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("trust_dir: %w", err)
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	var cas []*x509.Certificate
	var crls []namedCRL
	listed := false
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		c, err := readCertificate(path)
		if err != nil {
			crl, cerr := readCRL(path)
			switch {
			case cerr == nil:
				crls = append(crls, namedCRL{file: e.Name(), crl: crl})
			case strings.EqualFold(filepath.Ext(e.Name()), ".crl"):
				// A damaged list would quietly turn revocation off.
				d.log.Warn("trust_dir: revocation list unreadable, not applied: replace it", "file", e.Name(), "err", cerr)
			default:
				d.log.Debug("trust_dir: neither a certificate nor a revocation list, ignored", "file", e.Name(), "err", err)
			}
			continue
		}
		if bytes.Equal(c, cert.Raw) {
			listed = true
		}
		if parsed, err := x509.ParseCertificate(c); err == nil && parsed.IsCA {
			// Only a self-signed CA is a root; an intermediate one must
			// itself chain to a root, so that a list revoking it counts.
			if bytes.Equal(parsed.RawSubject, parsed.RawIssuer) && parsed.CheckSignatureFrom(parsed) == nil {
				roots.AddCert(parsed)
			} else {
				intermediates.AddCert(parsed)
			}
			cas = append(cas, parsed)
		}
	}
	chain := []*x509.Certificate{cert}
	if !listed {
		chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("%s is not trusted: it is neither in trust_dir %s nor signed by a CA there (after checking it with the plant's OPC UA administrator, copy it there; `hazgate opcua browse` shows it)", who, dir)
		}
		chain = chains[0][:len(chains[0])-1] // the root is trusted as such
	}
	return d.checkRevoked(chain, who, cas, crls)
}

// namedCRL is a revocation list read from trust_dir.
type namedCRL struct {
	file string
	crl  *x509.RevocationList
}

// checkRevoked refuses a certificate of chain that a revocation list lists,
// when a CA in trust_dir signed that list. An out-of-date list still
// counts, with a warning: refusing every server because the plant's PKI
// administrator was late with a new list would stop the monitoring, which
// is worse than trusting a list a few days old.
func (d *Driver) checkRevoked(chain []*x509.Certificate, who string, cas []*x509.Certificate, crls []namedCRL) error {
	for _, l := range crls {
		var issuer *x509.Certificate
		for _, ca := range cas {
			if bytes.Equal(ca.RawSubject, l.crl.RawIssuer) && l.crl.CheckSignatureFrom(ca) == nil {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			d.log.Warn("trust_dir: revocation list not signed by a CA certificate in trust_dir, ignored", "file", l.file)
			continue
		}
		if !l.crl.NextUpdate.IsZero() && time.Now().After(l.crl.NextUpdate) {
			d.log.Warn("trust_dir: revocation list out of date, still applied: ask for a new one", "file", l.file, "next_update", l.crl.NextUpdate)
		}
		for _, c := range chain {
			// The list's issuer must be the certificate's issuer, by
			// signature and not only by name: two CAs may share a name.
			if !bytes.Equal(c.RawIssuer, l.crl.RawIssuer) || c.CheckSignatureFrom(issuer) != nil {
				continue
			}
			for _, r := range l.crl.RevokedCertificateEntries {
				if r.SerialNumber != nil && r.SerialNumber.Cmp(c.SerialNumber) == 0 {
					return fmt.Errorf("%s is revoked: %q (serial %s) is listed in %s since %s", who, c.Subject.CommonName, c.SerialNumber, l.file, r.RevocationTime.UTC().Format(time.RFC3339))
				}
			}
		}
	}
	return nil
}

// readCRL reads a certificate revocation list, PEM ("X509 CRL") or DER.
func readCRL(path string) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block is %q, not X509 CRL", block.Type)
		}
		b = block.Bytes
	}
	return x509.ParseRevocationList(b)
}

// saveRejected writes a refused server certificate into the rejected
// folder as "<common name> [<thumbprint>].der" and returns its path; it
// writes nothing when the file is there already (the gateway retries a
// refused server with back-off) or when there is no data directory.
func (d *Driver) saveRejected(cert *x509.Certificate) (string, error) {
	if d.opts.CertDir == "" {
		return "", nil
	}
	dir := filepath.Join(d.opts.CertDir, RejectedDirName)
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || !unicode.IsPrint(r) {
			return '_'
		}
		return r
	}, cert.Subject.CommonName)
	if r := []rune(name); len(r) > 64 { // a file name has at most 255 bytes
		name = string(r[:64])
	}
	path := filepath.Join(dir, fmt.Sprintf("%s [%s].der", name, Thumbprint(cert.Raw)))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rejected folder: %w", err)
	}
	if err := os.WriteFile(path, cert.Raw, 0o644); err != nil {
		return "", fmt.Errorf("rejected folder: %w", err)
	}
	return path, nil
}

// password reads the user's password from its file or environment
// variable. It is never logged.
func password(o config.OPCUA) (string, error) {
	switch {
	case o.PasswordFile != "":
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case o.PasswordEnv != "":
		p, ok := os.LookupEnv(o.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("password_env: environment variable %s is not set", o.PasswordEnv)
		}
		return p, nil
	}
	return "", errors.New("no password_file or password_env for user " + o.Username)
}

func passwordSource(o config.OPCUA) string {
	if o.PasswordFile != "" {
		return "password from " + o.PasswordFile
	}
	return "password from $" + o.PasswordEnv
}

func parseCert(der []byte) (*x509.Certificate, error) { return x509.ParseCertificate(der) }
