package opcua

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/interop"
	"hazgate/internal/model"
)

// nodeServer is scripts/interop/opcua/server.js (node-opcua-server), an
// OPC UA server written by other people, run as a child process on a
// 127.0.0.1 port of its own.
type nodeServer struct {
	t      testing.TB
	node   string
	dir    string // the script's folder
	pki    string // the server's certificate folder
	port   int
	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	waited chan struct{}
}

func (s *nodeServer) endpoint() string { return "opc.tcp://127.0.0.1:" + strconv.Itoa(s.port) }

// certificate is the server's certificate, DER.
func (s *nodeServer) certificate() []byte {
	b, err := os.ReadFile(filepath.Join(s.pki, "server-cert.der"))
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// startNodeServer runs server.js with args (besides --port and --pki) and
// waits until it serves. It skips, or fails under HAZGATE_INTEROP=1, when
// node or the npm install is missing.
func startNodeServer(t testing.TB, args ...string) *nodeServer {
	t.Helper()
	node := interop.Require(t, "node")[0]
	dir, err := filepath.Abs("../../scripts/interop/opcua")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua-server")); err != nil {
		if interop.Required() {
			t.Fatalf("node-opcua-server is not installed: .ci/run must run npm ci --prefix scripts/interop/opcua (%v)", err)
		}
		t.Skip("node-opcua-server is not installed: run npm ci --prefix scripts/interop/opcua")
	}
	s := &nodeServer{t: t, node: node, dir: dir, pki: t.TempDir(), args: args}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("node-opcua server did not start on port %d, trying another: %v", s.port, err)
	}
	t.Cleanup(s.stop)
	return s
}

// start runs the server on s.port and waits for its READY line.
func (s *nodeServer) start() error {
	cmd := exec.Command(s.node, append([]string{"server.js", "--port", strconv.Itoa(s.port), "--pki", s.pki}, s.args...)...)
	cmd.Dir = s.dir
	// Its own HOME: node-opcua must not write into the tester's.
	cmd.Env = append(os.Environ(), "HOME="+s.pki)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case ok := <-ready:
		if ok {
			s.mu.Lock()
			s.cmd, s.waited = cmd, waited
			s.mu.Unlock()
			return nil
		}
		<-waited
		return errors.New("server.js exited: " + stderr.String())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-waited
		return errors.New("server.js not ready after 60 s: " + stderr.String())
	}
}

// stop ends the server: SIGTERM, then SIGKILL after 5 s.
func (s *nodeServer) stop() {
	s.mu.Lock()
	cmd, waited := s.cmd, s.waited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-waited
	}
}

// kill ends the server the hard way, as a crash would.
func (s *nodeServer) kill() {
	s.mu.Lock()
	cmd, waited := s.cmd, s.waited
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-waited
	}
}

func interopDevice(endpoint string, o *config.OPCUA, tags ...tagSpec) config.Device {
	const interval = 250 * time.Millisecond
	d := device(endpoint, interval, tags...)
	d.Timeout = config.Duration(2 * time.Second) // node on a loaded CI machine
	d.Interval = config.Duration(interval)
	d.OPCUA = o
	return d
}

var reactorTags = []tagSpec{
	{name: "TT-301", node: "ns=1;s=R-301.TT-301"},
	{name: "PT-301", node: "ns=1;s=R-301.PT-301"},
	{name: "XS-301", node: "ns=1;s=R-301.XS-301", subscribe: true},
	{name: "TT-301-SUB", node: "ns=1;s=R-301.TT-301", subscribe: true},
	{name: "COUNT", node: "ns=1;s=R-301.Count"},
	{name: "SP", node: "ns=1;s=R-301.TIC-301.SP", writable: true},
	{name: "GONE", node: "ns=1;s=R-301.NoSuchTag"},
	{name: "GONE-SUB", node: "ns=1;s=R-301.NoSuchTag", subscribe: true},
}

// checkReactor polls until the good tags are good and checks every tag.
func checkReactor(t *testing.T, d *Driver) {
	t.Helper()
	ready := func(s []model.Sample, err error) bool {
		if err != nil || len(s) != len(reactorTags) {
			return false
		}
		m := byTag(s)
		for _, n := range []string{"TT-301", "PT-301", "XS-301", "TT-301-SUB", "COUNT", "SP"} {
			if m[n].Quality != model.Good {
				return false
			}
		}
		return true
	}
	s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, ready)
	if !ready(s, err) {
		t.Fatalf("node-opcua reactor never read good: %+v, %v", s, err)
	}
	m := byTag(s)
	if v := m["TT-301"].Value; v < 74 || v > 86 {
		t.Errorf("TT-301 = %v, want 75..85", v)
	}
	if v := m["TT-301-SUB"].Value; v < 74 || v > 86 {
		t.Errorf("TT-301 by subscription = %v, want 75..85", v)
	}
	if m["XS-301"].Value != 1 || m["COUNT"].Value != 7 {
		t.Errorf("XS-301 %+v, COUNT %+v; want 1 and 7", m["XS-301"], m["COUNT"])
	}
	for _, n := range []string{"GONE", "GONE-SUB"} {
		if g := m[n]; g.Quality != model.Bad || !strings.Contains(g.Reason, "BadNodeIDUnknown") {
			t.Errorf("%s = %+v, want bad BadNodeIDUnknown", n, g)
		}
	}
	// node-opcua stamps source timestamps: they are kept.
	if at := m["TT-301"].Time; time.Since(at) > 10*time.Second || time.Until(at) > 10*time.Second {
		t.Errorf("TT-301 time %v is not a recent source timestamp", at)
	}
}

func TestInteropNodeOPCUANone(t *testing.T) {
	srv := startNodeServer(t)
	d := newDriver(t, interopDevice(srv.endpoint(), nil, reactorTags...))
	checkReactor(t, d)

	// Writes: a Double set point, written and read back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Write(ctx, "SP", 85.5); err != nil {
		t.Fatalf("write SP: %v", err)
	}
	s, err := pollUntil(t, d, 250*time.Millisecond, 5*time.Second, func(s []model.Sample, err error) bool {
		return err == nil && byTag(s)["SP"].Value == 85.5
	})
	if byTag(s)["SP"].Value != 85.5 {
		t.Errorf("SP after the write = %+v (%v), want 85.5", byTag(s)["SP"], err)
	}
	if err := d.Write(ctx, "TT-301", 1); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("write to a tag not marked writable: %v, want refused", err)
	}
}

func TestInteropNodeOPCUASecure(t *testing.T) {
	srv := startNodeServer(t, "--secure", "--user", "operator", "--password", "s3cret pass")
	trust := t.TempDir()
	if err := os.WriteFile(filepath.Join(trust, "reactor.der"), srv.certificate(), 0o644); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	o := &config.OPCUA{
		SecurityPolicy: config.OPCUAPolicyBasic256Sha256, SecurityMode: config.OPCUAModeSignAndEncrypt,
		Username: "operator", PasswordFile: pw, TrustDir: trust, CertDir: certDir,
		ApplicationURI: "urn:hazgate:interop",
	}
	d := newDriver(t, interopDevice(srv.endpoint(), o, reactorTags...))
	checkReactor(t, d)
	cert1, err := os.ReadFile(filepath.Join(certDir, CertFileName))
	if err != nil {
		t.Fatalf("no application certificate generated: %v", err)
	}

	// The server crashes and comes back on the same port with the same
	// certificate: every subscribed tag updates again within 10 s, and
	// the gateway presents the same certificate (gopcua #593).
	srv.kill()
	if _, err := pollUntil(t, d, 250*time.Millisecond, 10*time.Second, func(_ []model.Sample, err error) bool { return err != nil }); err == nil {
		t.Fatal("polls kept succeeding with the server killed")
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	fresh := func(s []model.Sample, err error) bool {
		m := byTag(s)
		for _, n := range []string{"XS-301", "TT-301-SUB"} {
			if m[n].Quality != model.Good || m[n].Time.Before(restarted.Add(-time.Second)) {
				return false
			}
		}
		return err == nil
	}
	s, err := pollUntil(t, d, 250*time.Millisecond, 10*time.Second, fresh)
	if !fresh(s, err) {
		t.Fatalf("10 s after the restart: %+v, %v", s, err)
	}
	t.Logf("subscribed tags updated %v after the server came back", time.Since(restarted).Round(time.Millisecond))
	cert2, err := os.ReadFile(filepath.Join(certDir, CertFileName))
	if err != nil || !bytes.Equal(cert1, cert2) {
		t.Errorf("the application certificate changed across reconnects (%v)", err)
	}

	// A wrong password: a clear error naming the endpoint and the policy.
	bad := *o
	badPW := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(badPW, []byte("guess"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad.PasswordFile = badPW
	wrong := newDriver(t, interopDevice(srv.endpoint(), &bad, reactorTags[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	samples, err := wrong.Poll(ctx)
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	for _, want := range []string{srv.endpoint(), "Basic256Sha256", "SignAndEncrypt", `login as user "operator" refused`, "password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("wrong password error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "guess") {
		t.Errorf("the error shows the password: %v", err)
	}
	if len(samples) != 1 || samples[0].Quality != model.Bad {
		t.Errorf("samples with a wrong password: %+v", samples)
	}
	t.Logf("wrong password: %v", err)
}

// TestInteropNodeOPCUAUntrusted: a server whose certificate is not in the
// trust folder gets no session, and its certificate lands in the rejected
// folder; moved into the trust folder, as an integrator would after
// checking the thumbprint, it is trusted at the next attempt.
func TestInteropNodeOPCUAUntrusted(t *testing.T) {
	srv := startNodeServer(t, "--secure", "--user", "operator", "--password", "pw")
	t.Setenv("HAZGATE_TEST_OPCUA_PW", "pw")
	trust, certDir := t.TempDir(), t.TempDir()
	o := &config.OPCUA{
		SecurityPolicy: config.OPCUAPolicyBasic256Sha256, SecurityMode: config.OPCUAModeSign,
		Username: "operator", PasswordEnv: "HAZGATE_TEST_OPCUA_PW", TrustDir: trust, CertDir: certDir,
	}
	d := newDriver(t, interopDevice(srv.endpoint(), o, reactorTags[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.Poll(ctx)
	if err == nil || !strings.Contains(err.Error(), "is not trusted") {
		t.Fatalf("untrusted server: %v, want 'is not trusted'", err)
	}
	rejected, _ := filepath.Glob(filepath.Join(certDir, RejectedDirName, "*.der"))
	if len(rejected) != 1 {
		t.Fatalf("rejected folder holds %v, want the server's certificate", rejected)
	}
	if b, _ := os.ReadFile(rejected[0]); !bytes.Equal(b, srv.certificate()) {
		t.Fatalf("%s is not the server's certificate", rejected[0])
	}
	if err := os.Rename(rejected[0], filepath.Join(trust, filepath.Base(rejected[0]))); err != nil {
		t.Fatal(err)
	}
	if s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, allGood); !allGood(s, err) {
		t.Fatalf("after trusting the rejected certificate: %v %+v", err, s)
	}
}

// TestInteropNodeOPCUADeadband: the monitored item's absolute deadband
// reaches the server: with a deadband wider than the swing, TT-301 keeps
// its first value while the same node without one keeps changing.
func TestInteropNodeOPCUADeadband(t *testing.T) {
	srv := startNodeServer(t)
	dev := interopDevice(srv.endpoint(), nil,
		tagSpec{name: "TT-FILTERED", node: "ns=1;s=R-301.TT-301", subscribe: true},
		tagSpec{name: "TT-ALL", node: "ns=1;s=R-301.TT-301", subscribe: true},
	)
	dev.Tags[0].OPCUA.DeadbandAbsolute = 100
	d := newDriver(t, dev)
	s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, allGood)
	if !allGood(s, err) {
		t.Fatalf("%+v, %v", s, err)
	}
	first := byTag(s)
	changes := 0
	last := first["TT-ALL"].Value
	for range 12 { // 3 s: node's TT-301 swings ±5 °C every 12.6 s
		s, err = pollUntil(t, d, 250*time.Millisecond, 0, func([]model.Sample, error) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		m := byTag(s)
		if m["TT-FILTERED"].Value != first["TT-FILTERED"].Value || !m["TT-FILTERED"].Time.Equal(first["TT-FILTERED"].Time) {
			t.Fatalf("the filtered item changed: %+v, first %+v", m["TT-FILTERED"], first["TT-FILTERED"])
		}
		if m["TT-ALL"].Value != last {
			changes++
			last = m["TT-ALL"].Value
		}
	}
	if changes < 3 {
		t.Errorf("the unfiltered item changed %d times in 3 s, want several", changes)
	}
}

// TestInteropNodeOPCUAAesPolicies: the newer policies, each the only one
// the server offers, with user name login.
func TestInteropNodeOPCUAAesPolicies(t *testing.T) {
	for _, policy := range []string{config.OPCUAPolicyAes128, config.OPCUAPolicyAes256} {
		t.Run(policy, func(t *testing.T) {
			srv := startNodeServer(t, "--secure", "--policy", policy, "--user", "operator", "--password", "pw")
			t.Setenv("HAZGATE_TEST_OPCUA_PW", "pw")
			o := &config.OPCUA{
				SecurityPolicy: policy, SecurityMode: config.OPCUAModeSignAndEncrypt,
				Username: "operator", PasswordEnv: "HAZGATE_TEST_OPCUA_PW", ServerCertFile: filepath.Join(srv.pki, "server-cert.der"), CertDir: t.TempDir(),
			}
			d := newDriver(t, interopDevice(srv.endpoint(), o, reactorTags[0], reactorTags[3]))
			s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, allGood)
			if !allGood(s, err) {
				t.Fatalf("%s: %+v, %v", policy, s, err)
			}
		})
	}
}

// TestInteropNodeOPCUACertificateLogin: login with an X.509 user
// certificate over Basic256Sha256 SignAndEncrypt.
func TestInteropNodeOPCUACertificateLogin(t *testing.T) {
	srv := startNodeServer(t, "--secure", "--user", "operator", "--password", "pw")
	userDir := t.TempDir()
	userCert, userKey := filepath.Join(userDir, "user.der"), filepath.Join(userDir, "user-key.pem")
	if err := generateCertificate(userCert, userKey, "urn:hazgate:user:operator"); err != nil {
		t.Fatal(err)
	}
	o := &config.OPCUA{
		SecurityPolicy: config.OPCUAPolicyBasic256Sha256, SecurityMode: config.OPCUAModeSignAndEncrypt,
		UserCertFile: userCert, UserKeyFile: userKey,
		ServerCertFile: filepath.Join(srv.pki, "server-cert.der"), CertDir: t.TempDir(),
	}
	d := newDriver(t, interopDevice(srv.endpoint(), o, reactorTags[0], reactorTags[3]))
	s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, allGood)
	if !allGood(s, err) {
		t.Fatalf("certificate login: %+v, %v", s, err)
	}
}

// TestInteropNodeOPCUAReadLimit: a server that reads at most 30 nodes per
// request refuses the configured 500; the driver halves its batches until
// the server takes them, without dropping the session, and every tag
// reads good.
func TestInteropNodeOPCUAReadLimit(t *testing.T) {
	srv := startNodeServer(t, "--max-nodes-per-read", "30")
	tags := make([]tagSpec, 100)
	for i := range tags {
		tags[i] = tagSpec{name: "T-" + strconv.Itoa(i), node: "ns=1;s=R-301.PT-301"}
	}
	d := newDriver(t, interopDevice(srv.endpoint(), &config.OPCUA{MaxNodesPerRead: 500}, tags...))
	s, err := pollUntil(t, d, 250*time.Millisecond, 30*time.Second, allGood)
	if !allGood(s, err) {
		t.Fatalf("%v; first sample %+v", err, s[0])
	}
	if d.opts.MaxNodesPerRead > 30 {
		t.Errorf("max nodes per read %d, want <= 30", d.opts.MaxNodesPerRead)
	}
}
