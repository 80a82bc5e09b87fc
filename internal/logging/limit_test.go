package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// clock is a manual clock for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time           { return c.t }
func (c *clock) advance(d time.Duration)  { c.t = c.t.Add(d) }
func lines(b *bytes.Buffer) []string      { return strings.Split(strings.TrimSpace(b.String()), "\n") }
func count(b *bytes.Buffer, s string) int { return strings.Count(b.String(), s) }
func newTest() (*bytes.Buffer, *clock, *LimitHandler) {
	var b bytes.Buffer
	c := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	h := NewLimit(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}), LimitOptions{Every: time.Minute, Now: c.now})
	return &b, c, h
}

// TestLimitDeadDevice: a device that fails every poll (10 a second) for
// five minutes writes one line a minute, each later one saying how many
// were left out, and a last count when it recovers; another device's
// message and the same message at another level are not held back.
func TestLimitDeadDevice(t *testing.T) {
	b, c, h := newTest()
	log := slog.New(h)
	plc1, plc2 := log.With("device", "plc-1"), log.With("device", "plc-2")
	for i := range 3000 { // 5 minutes at 100 ms
		plc1.Warn("poll failed", "err", errors.New("i/o timeout "+string(rune('a'+i%3))))
		if i == 5 {
			plc2.Warn("poll failed", "err", "connection refused")
			plc1.Error("poll failed", "err", "x")
		}
		c.advance(100 * time.Millisecond)
	}
	if n := count(b, "device=plc-1"); n < 5 || n > 7 {
		t.Errorf("plc-1 wrote %d lines in 5 minutes, want one a minute (+ the error):\n%s", n, b)
	}
	if n := count(b, "device=plc-2"); n != 1 {
		t.Errorf("plc-2 wrote %d lines, want 1", n)
	}
	if n := count(b, "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines, want 1", n)
	}
	if !strings.Contains(b.String(), "repeated=599") {
		t.Errorf("no line carries the count of the minute (599 left out):\n%s", b)
	}
	before := count(b, "repeated=")
	// It recovers: the count of the last stretch comes with the next
	// line of anything, once the message has been quiet for a minute.
	c.advance(2 * time.Minute)
	log.Info("device up", "device", "plc-1")
	if count(b, "repeated=") != before+1 {
		t.Errorf("the last count was not written after the repeats stopped:\n%s", b)
	}
	total := 0
	for _, l := range lines(b) {
		var n int
		if i := strings.Index(l, "repeated="); i >= 0 {
			for _, ch := range l[i+len("repeated="):] {
				if ch < '0' || ch > '9' {
					break
				}
				n = n*10 + int(ch-'0')
			}
		}
		if strings.Contains(l, "device=plc-1") && strings.Contains(l, "level=WARN") {
			total += 1 + n
		}
	}
	if total != 3000 {
		t.Errorf("lines + repeats of plc-1 = %d, want 3000: nothing may be lost", total)
	}
}

// TestLimitFlush: at shutdown, Flush writes the counts still pending.
func TestLimitFlush(t *testing.T) {
	b, c, h := newTest()
	log := slog.New(h).With("stage", "uplink")
	for range 5 {
		log.Warn("connect failed", "broker", "tcp://10.0.0.5:1883")
		c.advance(time.Second)
	}
	if n := len(lines(b)); n != 1 {
		t.Fatalf("%d lines before Flush, want 1", n)
	}
	h.Flush(context.Background())
	if !strings.Contains(b.String(), "repeated=3") {
		t.Errorf("Flush did not write the count:\n%s", b)
	}
}
