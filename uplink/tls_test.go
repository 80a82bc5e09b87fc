package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"hazgate/internal/model"
)

// selfSigned makes a CA-less server certificate for name, valid for an hour,
// and writes it as PEM to dir.
func selfSigned(t *testing.T, dir, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

func TestTLSVerifiesTheBroker(t *testing.T) {
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir, "broker.test")
	_, otherCA := selfSigned(t, dir, "other.test")

	addr, _ := startMochi(t, "tls", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		mochiHook{hook: new(auth.AllowHook)})

	for _, c := range []struct {
		name, scheme, ca string
		ok               bool
	}{
		{"ssl with the right CA", "ssl", caFile, true},
		{"tls with the right CA", "tls", caFile, true},
		{"wrong CA is refused", "ssl", otherCA, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(c.scheme + "://" + addr)
			cfg.Uplink.TLS.CAFile = c.ca
			cfg.Uplink.TLS.ServerName = "broker.test" // the URL says 127.0.0.1
			src := newMemSource()
			src.addData(5)
			u, _ := runUplink(t, Options{Config: cfg}, src)
			if c.ok {
				eventually(t, 10*time.Second, "delivered over TLS", func() bool { return src.unacked(model.StreamData) == 0 })
				return
			}
			eventually(t, 10*time.Second, "a refused attempt", func() bool { return u.Stats().ConnectFailures >= 1 })
			if u.Connected() || u.Stats().AckedMsgs > 0 {
				t.Fatalf("connected to a broker with an untrusted certificate: %+v", u.Stats())
			}
		})
	}
}
