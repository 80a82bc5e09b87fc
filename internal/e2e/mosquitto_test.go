package e2e

import (
	"context"
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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/interop"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/watch"
)

// These tests put a real Mosquitto (Debian's, 2.0) between the gateway and
// the platform: the contract must hold with a broker we did not write.

// watcher runs `hazgate watch`'s logic against a broker until stopped.
type watcher struct {
	c    *watch.Checker
	out  *testkit.SyncBuffer
	stop func() error
}

func startWatcher(t *testing.T, opts watch.Options) *watcher {
	t.Helper()
	out := &testkit.SyncBuffer{}
	c, err := watch.NewChecker(out, false)
	if err != nil {
		t.Fatal(err)
	}
	return startWatcherOn(t, opts, c, out)
}

// startWatcherOn feeds c, which other watchers (on other brokers) may
// share: one platform view across a failover.
func startWatcherOn(t *testing.T, opts watch.Options, c *watch.Checker, out *testkit.SyncBuffer) *watcher {
	t.Helper()
	w := &watcher{c: c, out: out}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts.Ready = func() { close(ready) }
	go func() { done <- watch.Run(ctx, opts, w.c) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("watch: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("watch did not subscribe within 15 s")
	}
	var once sync.Once
	var runErr error
	w.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = w.stop() })
	return w
}

func (w *watcher) waitOutput(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("watch output %q", want), func() bool { return strings.Contains(w.out.String(), want) })
}

// finish stops the watcher and fails the test on any invalid payload or
// unexplained gap.
func (w *watcher) finish(t *testing.T) watch.Report {
	t.Helper()
	if err := w.stop(); err != nil {
		t.Errorf("watch: %v", err)
	}
	r := w.c.Finish()
	if !r.OK() {
		out := w.out.String()
		t.Errorf("watch: %d invalid payloads, missing %v\n...%s", r.Invalid, r.Missing, out[max(0, len(out)-4000):])
	}
	return r
}

// runGateway runs the gateway in this process until the returned stop.
func runGateway(t *testing.T, cfg *config.Config) (*gateway.Gateway, func()) {
	t.Helper()
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g, testkit.RunInBackground(t, "gateway", g, 15*time.Second)
}

// TestMosquittoDeliversEverySequence: the gateway publishes through
// Mosquitto; a subscriber sees every sequence number of both streams and
// every payload matches the schemas, up to the retained orderly offline.
func TestMosquittoDeliversEverySequence(t *testing.T) {
	dir := t.TempDir()
	mq := testkit.StartMosquitto(t, dir, "allow_anonymous true")
	w := startWatcher(t, watch.Options{Broker: "tcp://" + mq.Addr, Gateway: "demo-gw-01"})
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	cfg := loadConfig(t, testkit.DemoConfigYAML(t, plant.Addr(), "tcp://"+mq.Addr, filepath.Join(dir, "data")))
	_, stop := runGateway(t, cfg)

	waitFor(t, 20*time.Second, "300 samples through mosquitto", func() bool {
		r := w.c.Counts()
		return r.Samples >= 300 && r.Events >= 1
	})
	stop()
	w.waitOutput(t, 10*time.Second, "offline (shutdown)")
	r := w.finish(t)
	if r.Samples < 300 || r.Events < 2 {
		t.Errorf("only %d samples and %d events arrived", r.Samples, r.Events)
	}
	t.Logf("%d messages, %d samples, %d events, %d duplicates", r.Messages, r.Samples, r.Events, r.Duplicates)
}

// TestMosquittoLastWillOnKill kills the gateway process with SIGKILL: the
// broker must publish, retained, the offline status with reason
// "connection lost" that the gateway registered as its will, and a
// platform that subscribes later still finds it.
func TestMosquittoLastWillOnKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	mq := testkit.StartMosquitto(t, dir, "allow_anonymous true")
	bin := buildGateway(t, dir)
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	w := startWatcher(t, watch.Options{Broker: "tcp://" + mq.Addr, Gateway: "demo-gw-01"})
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", testkit.DemoConfigYAML(t, plant.Addr(), "tcp://"+mq.Addr, filepath.Join(dir, "data")))

	var logs testkit.SyncBuffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	})
	w.waitOutput(t, 15*time.Second, "STATUS   demo-gw-01 online")
	w.waitOutput(t, 15*time.Second, "DATA ")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	w.waitOutput(t, 15*time.Second, "offline (connection lost)")
	w.finish(t)

	// A platform that connects only now finds the will, retained.
	late := startWatcher(t, watch.Options{Broker: "tcp://" + mq.Addr, Gateway: "demo-gw-01"})
	late.waitOutput(t, 10*time.Second, "STATUS   demo-gw-01 offline (connection lost) [retained]")
	late.finish(t)
}

// TestMosquittoTLSAndPassword: Mosquitto with a server certificate from a
// CA the test makes now, and a password file; the gateway connects with
// ssl:// and its password file. A wrong password is refused.
func TestMosquittoTLSAndPassword(t *testing.T) {
	passwd := interop.Require(t, "mosquitto_passwd")[0]
	dir := t.TempDir()
	ca, server := makeCerts(t, dir)
	pwFile := filepath.Join(dir, "mosquitto.passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "demo-gw-01", "s3cret-for-test").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	if out, err := exec.Command(passwd, "-b", pwFile, "dispatch", "watch-pw").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	mq := testkit.StartMosquitto(t, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\ncafile %s\ncertfile %s\nkeyfile %s\n",
		pwFile, ca, server[0], server[1]))
	url := "ssl://" + mq.Addr

	w := startWatcher(t, watch.Options{Broker: url, Gateway: "demo-gw-01", Username: "dispatch", Password: "watch-pw", CAFile: ca})
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	yaml := func(password, data string) *config.Config {
		pw := testkit.WriteFile(t, dir, "gw-password-"+data, []byte(password+"\n"))
		s := string(testkit.DemoConfigYAML(t, plant.Addr(), url, filepath.Join(dir, data)))
		const anchor = "  topic_prefix: hazgate\n"
		if !strings.Contains(s, anchor) {
			t.Fatalf("configs/demo.yaml no longer contains %q; update this test", anchor)
		}
		s = strings.Replace(s, anchor, anchor+fmt.Sprintf("  username: demo-gw-01\n  password_file: %q\n  tls:\n    ca_file: %q\n", pw, ca), 1)
		return loadConfig(t, []byte(s))
	}

	// Wrong password: the broker refuses, the gateway keeps trying and
	// keeps its data.
	bad, stopBad := runGateway(t, yaml("wrong", "data-bad"))
	time.Sleep(3 * time.Second)
	if st := bad.Status(); st.Connected || st.Buffer.Data.Records == 0 {
		t.Errorf("with a wrong password: connected=%v, %d data records buffered", st.Connected, st.Buffer.Data.Records)
	}
	stopBad()
	if strings.Contains(w.out.String(), "DATA ") {
		t.Fatalf("data arrived although the password was wrong:\n%s", w.out.String())
	}

	_, stop := runGateway(t, yaml("s3cret-for-test", "data-good"))
	waitFor(t, 20*time.Second, "data over TLS", func() bool { return strings.Count(w.out.String(), "DATA ") >= 5 })
	stop()
	w.waitOutput(t, 10*time.Second, "offline (shutdown)")
	r := w.finish(t)
	if r.Samples == 0 {
		t.Error("no sample arrived over TLS")
	}
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 into dir,
// made now and never committed. It returns the CA file and the server's
// certificate and key files.
func makeCerts(t *testing.T, dir string) (string, [2]string) {
	t.Helper()
	p := makePKI(t, dir)
	return p.caFile, p.server
}

// pki is a CA with a server certificate for 127.0.0.1.
type pki struct {
	caFile string
	server [2]string // certificate and key files
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func makePKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hazgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return pki{
		caFile: pemFile("ca.pem", "CERTIFICATE", caDER),
		server: [2]string{pemFile("server.pem", "CERTIFICATE", srvDER), pemFile("server.key", "EC PRIVATE KEY", keyDER)},
		ca:     caCert, caKey: caKey,
	}
}

// makeClientCert writes a client certificate for mutual TLS, signed by ca.
func makeClientCert(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) [2]string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, name+".pem")
	kf := filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return [2]string{cert, kf}
}

// tlsClientConfig trusts caFile and presents the client certificate cert.
func tlsClientConfig(caFile string, cert [2]string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c, err := tls.LoadX509KeyPair(cert[0], cert[1])
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}
