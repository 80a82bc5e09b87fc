package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

// TestSystemdNotify runs the binary as systemd would with Type=notify and
// WatchdogSec: it must say READY=1 once started, ping WATCHDOG=1 within the
// interval while its pipeline turns, and say STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), filepath.Join(dir, "data")))

	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-msgs:
				if m == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %q within %v", want, within)
			}
		}
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000") // 1 s
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	}()
	expect("READY=1", 20*time.Second)
	for range 3 {
		expect("WATCHDOG=1", 2*time.Second)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1", 15*time.Second)
}
