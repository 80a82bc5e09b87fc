package uplink

import (
	"context"
	"sync"
	"time"
)

// ClockJump is one step of the wall clock against the monotonic clock,
// e.g. an NTP correction after a boot without a real-time clock, or an
// operator setting the time by hand.
type ClockJump struct {
	Offset time.Duration // wall minus monotonic elapsed; negative = the wall clock went back
	At     time.Time     // wall time after the jump
}

// ClockMonitor notices jumps of the wall clock. Record times come from the
// wall clock (they must be UTC wall times for the platform) but sequence
// numbers, not times, give the order, so a jump never reorders records; it
// only has to be reported, because acquisition times around it are off.
type ClockMonitor struct {
	Every     time.Duration   // how often to compare; zero means 1 s
	Threshold time.Duration   // smallest jump reported; zero means 2 s
	OnJump    func(ClockJump) // called on Run's goroutine; may be nil

	mu    sync.Mutex
	jumps uint64
	last  ClockJump
}

// Run compares the clocks every Every until ctx ends.
func (m *ClockMonitor) Run(ctx context.Context) {
	every := orDur0(m.Every, time.Second)
	threshold := orDur0(m.Threshold, 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if j, ok := jumpBetween(prev, now, threshold); ok {
			m.mu.Lock()
			m.jumps++
			m.last = j
			m.mu.Unlock()
			if m.OnJump != nil {
				m.OnJump(j)
			}
		}
		prev = now
	}
}

// jumpBetween compares the wall and the monotonic time elapsed between two
// readings of time.Now.
func jumpBetween(prev, now time.Time, threshold time.Duration) (ClockJump, bool) {
	mono := now.Sub(prev)                   // monotonic readings: immune to clock steps
	wall := now.Round(0).Sub(prev.Round(0)) // Round(0) strips the monotonic reading
	off, ok := jumpOf(wall, mono, threshold)
	return ClockJump{Offset: off, At: now.Round(0)}, ok
}

// jumpOf says whether wall and monotonic elapsed time differ by threshold
// or more, and by how much.
func jumpOf(wall, mono, threshold time.Duration) (time.Duration, bool) {
	off := wall - mono
	return off, off >= threshold || off <= -threshold
}

// Health reports the jumps seen so far.
func (m *ClockMonitor) Health() ClockHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := ClockHealth{State: "ok", Jumps: m.jumps}
	if m.jumps > 0 {
		s := m.last.Offset.Seconds()
		h.State, h.LastJumpS, h.LastJumpAt = "jumped", &s, FormatTime(m.last.At)
	}
	return h
}

func orDur0(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
