package testkit

import (
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/interop"
)

// Mosquitto is a running Debian Mosquitto: a broker we did not write,
// for tests that the MQTT contract holds with it.
type Mosquitto struct {
	Addr string      // 127.0.0.1:port
	Log  *SyncBuffer // its errors, warnings and notices
	Stop func()      // stops it with SIGTERM; also done at the end of the test
}

// URL is the broker's tcp:// URL.
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr }

// StartMosquitto runs `mosquitto -c` on a free loopback port, its config
// written to dir with settings (allow_anonymous, TLS files, password and
// ACL files, limits) after the listener line, and waits until it listens.
// It is stopped at the end of the test, and its log shown if the test
// failed. Without mosquitto installed the test skips (or fails under
// HAZGATE_INTEROP=1, see internal/interop).
func StartMosquitto(t testing.TB, dir, settings string) *Mosquitto {
	t.Helper()
	bin := interop.Require(t, "mosquitto")[0]
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`# written by %s
# Run as root in CI: stay root so that the test's private files stay readable.
user root
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
listener %s 127.0.0.1
%s
`, t.Name(), port, settings)
	path := WriteFile(t, dir, "mosquitto.conf", []byte(conf))
	m := &Mosquitto{Addr: addr, Log: &SyncBuffer{}}
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = m.Log, m.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	m.Stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	LogOnFailure(t, "mosquitto log", m.Log)
	t.Cleanup(m.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return m
		}
		select {
		case <-exited:
			t.Fatalf("mosquitto exited at start:\n%s", m.Log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s after 10 s:\n%s", addr, m.Log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
