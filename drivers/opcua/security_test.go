package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestApplicationCertificateIsKept: generated once, reused as it is on
// every later connect; half a pair is an error, never a silent new
// certificate (gopcua #593).
func TestApplicationCertificateIsKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "opcua")
	o := config.OPCUA{CertDir: dir, ApplicationURI: "urn:hazgate:gw-1"}
	cert1, key1, err := applicationCertificate(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(cert1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "urn:hazgate:gw-1" {
		t.Errorf("certificate URIs %v, want the application URI", c.URIs)
	}
	if st, err := os.Stat(filepath.Join(dir, KeyFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	cert2, key2, err := applicationCertificate(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert1, cert2) || !key1.Equal(key2) {
		t.Error("a second connect made a new certificate")
	}
	if err := os.Remove(filepath.Join(dir, KeyFileName)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := applicationCertificate(o); err == nil || !strings.Contains(err.Error(), "found only one of") {
		t.Errorf("certificate without its key: %v, want an error", err)
	}
	if cert3, err := os.ReadFile(filepath.Join(dir, CertFileName)); err != nil || !bytes.Equal(cert3, cert1) {
		t.Error("the certificate file was replaced")
	}
}

func selfSigned(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageKeyEncipherment,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestTrust: a server certificate is trusted when pinned, when in the trust
// folder, or when a CA there signed it; otherwise the error names its
// thumbprint.
func TestTrust(t *testing.T) {
	server, _ := selfSigned(t, "reactor", false, nil, nil)
	other, _ := selfSigned(t, "other", false, nil, nil)
	ca, caKey := selfSigned(t, "plant CA", true, nil, nil)
	signed, _ := selfSigned(t, "dcs", false, ca, caKey)

	write := func(dir, name string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, der, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := t.TempDir()
	withServer := t.TempDir()
	write(withServer, "reactor.der", server.Raw)
	write(withServer, "notes.txt", []byte("not a certificate"))
	withCA := t.TempDir()
	write(withCA, "ca.der", ca.Raw)
	pinned := write(t.TempDir(), "pinned.der", server.Raw)

	cases := []struct {
		name string
		o    config.OPCUA
		cert []byte
		ok   bool
	}{
		{"pinned", config.OPCUA{ServerCertFile: pinned}, server.Raw, true},
		{"pinned, other server", config.OPCUA{ServerCertFile: pinned}, other.Raw, false},
		{"in the folder", config.OPCUA{TrustDir: withServer}, server.Raw, true},
		{"not in the folder", config.OPCUA{TrustDir: withServer}, other.Raw, false},
		{"empty folder", config.OPCUA{TrustDir: empty}, server.Raw, false},
		{"signed by a CA in the folder", config.OPCUA{TrustDir: withCA}, signed.Raw, true},
		{"self-signed, CA folder", config.OPCUA{TrustDir: withCA}, server.Raw, false},
		{"no certificate", config.OPCUA{TrustDir: withServer}, nil, false},
	}
	for _, c := range cases {
		d, err := New(config.Device{Name: "dcs", Address: "opc.tcp://127.0.0.1:4840", OPCUA: &c.o}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.trust(c.cert)
		if (err == nil) != c.ok {
			t.Errorf("%s: trust = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && len(c.cert) > 0 && !strings.Contains(err.Error(), Thumbprint(c.cert)) {
			t.Errorf("%s: error %q does not give the thumbprint", c.name, err)
		}
	}
}

// TestPassword: from a file (trailing newline trimmed) or the environment.
func TestPassword(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := password(config.OPCUA{Username: "op", PasswordFile: f}); err != nil || p != "s3cret" {
		t.Errorf("from file: %q, %v", p, err)
	}
	t.Setenv("HAZGATE_TEST_PW", "env pw")
	if p, err := password(config.OPCUA{Username: "op", PasswordEnv: "HAZGATE_TEST_PW"}); err != nil || p != "env pw" {
		t.Errorf("from env: %q, %v", p, err)
	}
	if _, err := password(config.OPCUA{Username: "op", PasswordEnv: "HAZGATE_TEST_UNSET_PW"}); err == nil {
		t.Error("an unset variable gave a password")
	}
}

// TestTrustRevocationAndRejected: a revocation list in trust_dir, signed
// by the CA there, refuses the certificate it lists and only that one; a
// list signed by someone else is ignored; a refused certificate is saved
// once in <data>/opcua/rejected for the integrator to inspect.
func TestTrustRevocationAndRejected(t *testing.T) {
	ca, caKey := selfSigned(t, "plant CA", true, nil, nil)
	revoked, _ := selfSigned(t, "dcs-old", false, ca, caKey)
	good, _ := selfSigned(t, "dcs-new", false, ca, caKey)
	stranger, strangerKey := selfSigned(t, "not the plant CA", true, nil, nil)
	namesake, namesakeKey := selfSigned(t, "plant CA", true, nil, nil) // same name, other key
	inter, interKey := selfSigned(t, "unit 3 CA", true, ca, caKey)
	underInter, _ := selfSigned(t, "dcs-unit3", false, inter, interKey)

	crl := func(issuer *x509.Certificate, key *rsa.PrivateKey, next time.Time, serials ...*big.Int) []byte {
		var entries []x509.RevocationListEntry
		for _, s := range serials {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: next.Add(-48 * time.Hour), NextUpdate: next,
			RevokedCertificateEntries: entries,
		}, issuer, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	folder := func(files map[string][]byte) string {
		dir := t.TempDir()
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	withCRL := folder(map[string][]byte{"ca.der": ca.Raw, "ca.crl": crl(ca, caKey, time.Now().Add(24*time.Hour), revoked.SerialNumber)})
	// Out of date: still applied (with a warning).
	staleCRL := folder(map[string][]byte{"ca.der": ca.Raw, "ca.crl": crl(ca, caKey, time.Now().Add(-time.Hour), revoked.SerialNumber)})
	// A list with the right issuer name but signed by another key.
	forged := folder(map[string][]byte{"ca.der": ca.Raw, "stranger.der": stranger.Raw, "ca.crl": crl(ca, strangerKey, time.Now().Add(time.Hour), revoked.SerialNumber)})
	// Listing the certificate itself does not override the revocation.
	leafListed := folder(map[string][]byte{"ca.der": ca.Raw, "dcs-old.der": revoked.Raw, "ca.crl": crl(ca, caKey, time.Now().Add(time.Hour), revoked.SerialNumber)})
	// A list of another CA that only shares the plant CA's name.
	namesakeList := folder(map[string][]byte{"ca.der": ca.Raw, "namesake.der": namesake.Raw, "ca.crl": crl(namesake, namesakeKey, time.Now().Add(time.Hour), good.SerialNumber)})
	// The root revokes the intermediate CA: what it signed goes with it.
	interRevoked := folder(map[string][]byte{"ca.der": ca.Raw, "unit3.der": inter.Raw, "ca.crl": crl(ca, caKey, time.Now().Add(time.Hour), inter.SerialNumber)})
	interFine := folder(map[string][]byte{"ca.der": ca.Raw, "unit3.der": inter.Raw, "ca.crl": crl(ca, caKey, time.Now().Add(time.Hour), revoked.SerialNumber)})

	cases := []struct {
		name    string
		trust   string
		cert    *x509.Certificate
		ok      bool
		revoked *x509.Certificate // the one the error names; the server's when nil
	}{
		{"revoked", withCRL, revoked, false, nil},
		{"not revoked", withCRL, good, true, nil},
		{"revoked, list out of date", staleCRL, revoked, false, nil},
		{"list signed by another key", forged, revoked, true, nil},
		{"revoked, certificate itself in the folder", leafListed, revoked, false, nil},
		{"list of a namesake CA", namesakeList, good, true, nil},
		{"intermediate CA revoked", interRevoked, underInter, false, inter},
		{"intermediate CA not revoked", interFine, underInter, true, nil},
	}
	for _, c := range cases {
		data := t.TempDir()
		d, err := New(config.Device{Name: "dcs", Address: "opc.tcp://127.0.0.1:4840", OPCUA: &config.OPCUA{TrustDir: c.trust, CertDir: data}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.trust(c.cert.Raw)
		if (err == nil) != c.ok {
			t.Errorf("%s: trust = %v, want ok %v", c.name, err, c.ok)
			continue
		}
		saved, _ := filepath.Glob(filepath.Join(data, RejectedDirName, "*.der"))
		if c.ok {
			if len(saved) != 0 {
				t.Errorf("%s: trusted, yet saved as rejected: %v", c.name, saved)
			}
			continue
		}
		named := c.cert
		if c.revoked != nil {
			named = c.revoked
		}
		if !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), named.SerialNumber.String()) {
			t.Errorf("%s: error %q does not say revoked with the serial", c.name, err)
		}
		if len(saved) != 1 {
			t.Fatalf("%s: rejected folder holds %v, want the one certificate", c.name, saved)
		}
		if b, _ := os.ReadFile(saved[0]); !bytes.Equal(b, c.cert.Raw) || !strings.Contains(err.Error(), saved[0]) {
			t.Errorf("%s: %s is not the refused certificate, or the error %q does not name it", c.name, saved[0], err)
		}
		// A second refusal (the gateway retries) leaves the one file.
		_ = d.trust(c.cert.Raw)
		if again, _ := filepath.Glob(filepath.Join(data, RejectedDirName, "*")); len(again) != 1 {
			t.Errorf("%s: after a retry the rejected folder holds %v", c.name, again)
		}
	}
}
