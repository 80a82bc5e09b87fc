package uplink

import (
	"context"
	"testing"
	"time"
)

// A wall clock set forward or back shows as a difference between the wall
// and the monotonic reading; setting the system clock in a test is not
// possible, so the readings are made the way time.Now makes them.
func TestClockJumpDetection(t *testing.T) {
	prev := time.Now()
	now := prev.Add(time.Second) // keeps a monotonic reading: no jump
	if _, ok := jumpBetween(prev, now, 2*time.Second); ok {
		t.Fatal("steady clock reported as a jump")
	}
	// The system clock cannot be stepped in a test: jumpOf gets the two
	// elapsed times as time.Now's readings would give them.
	if off, ok := jumpOf(-9*time.Second, time.Second, 2*time.Second); !ok || off != -10*time.Second {
		t.Fatalf("wall stepped back 10 s: %v %v", off, ok)
	}
	if off, ok := jumpOf(3600*time.Second, time.Second, 2*time.Second); !ok || off != 3599*time.Second {
		t.Fatalf("wall stepped forward an hour: %v %v", off, ok)
	}
	if _, ok := jumpOf(2500*time.Millisecond, time.Second, 2*time.Second); ok {
		t.Fatal("1.5 s is under the 2 s threshold")
	}

	var m ClockMonitor
	if h := m.Health(); h.State != "ok" || h.Jumps != 0 || h.LastJumpS != nil {
		t.Fatalf("fresh monitor: %+v", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	m.Every = 10 * time.Millisecond
	m.OnJump = func(ClockJump) { t.Error("jump reported on a steady clock") }
	m.Run(ctx) // returns when ctx ends
}
