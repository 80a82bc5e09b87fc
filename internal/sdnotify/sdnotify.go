// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) without
// cgo or a library: one datagram per state change to the socket named by
// NOTIFY_SOCKET. With Type=notify the unit is "started" only once the
// gateway has its buffer open and its stages built; with WatchdogSec
// systemd restarts a gateway whose pipeline has stopped turning, which a
// process that is merely alive would not reveal.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends states to systemd. The zero value, and a nil *Notifier,
// send nothing: outside systemd every call is a no-op.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // WATCHDOG_USEC, when it is meant for this process
}

// FromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID. It returns
// nil when the process does not run under a notify-type unit.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract namespace
		path = "\x00" + path[1:]
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// Send sends one state, such as "READY=1" or "STOPPING=1".
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", state, err)
	}
	return nil
}

// Watchdog is the interval systemd expects a WATCHDOG=1 within; zero when
// the unit has no watchdog.
func (n *Notifier) Watchdog() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// RunWatchdog sends WATCHDOG=1 at half the watchdog interval for as long
// as alive reports true, until ctx is done. When alive turns false the
// pings stop and systemd, after its interval, kills and restarts the
// process: that is the point.
func (n *Notifier) RunWatchdog(ctx context.Context, alive func() bool) {
	every := n.Watchdog() / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				_ = n.Send("WATCHDOG=1")
			}
		}
	}
}
