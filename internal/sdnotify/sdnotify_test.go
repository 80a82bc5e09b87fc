package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen plays systemd: a datagram socket whose messages the test reads.
func listen(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func next(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no notify message within 5 s")
		return ""
	}
}

func TestOutsideSystemdNothingHappens(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %+v, want nil", n)
	}
	if err := n.Send("READY=1"); err != nil || n.Watchdog() != 0 {
		t.Fatalf("nil notifier: %v, %v", err, n.Watchdog())
	}
	n.RunWatchdog(context.Background(), func() bool { return true }) // returns at once
}

// TestReadyAndWatchdog: READY=1 reaches the socket, and WATCHDOG=1 comes at
// half the interval while alive, and stops when the pipeline does.
func TestReadyAndWatchdog(t *testing.T) {
	path, msgs := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(0))
	if n := FromEnv(); n.Watchdog() != 0 {
		t.Fatalf("a watchdog meant for pid 0 was taken: %v", n.Watchdog())
	}
	t.Setenv("WATCHDOG_PID", "")
	n := FromEnv()
	if n.Watchdog() != 200*time.Millisecond {
		t.Fatalf("watchdog %v, want 200ms", n.Watchdog())
	}
	if err := n.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs); m != "READY=1" {
		t.Fatalf("got %q, want READY=1", m)
	}
	var alive atomic.Bool
	alive.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.RunWatchdog(ctx, alive.Load)
	for range 3 {
		if m := next(t, msgs); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
	}
	alive.Store(false)
	time.Sleep(150 * time.Millisecond) // let a ping already on its way arrive
	for len(msgs) > 0 {
		<-msgs
	}
	select {
	case m := <-msgs:
		t.Fatalf("%q sent while the pipeline was not alive", m)
	case <-time.After(500 * time.Millisecond):
	}
}
