package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"hazgate/internal/model"
)

// A loop whose goroutine is woken more than an interval late (the gateway
// starved of CPU under load, a GC pause, a suspended VM) must not poll with
// a deadline already past: that poll fails at once and the healthy device
// is reported down, "not polled", for the gateway's own delay. The late
// tick is skipped as an overrun and the next one is polled in full.
func TestLateWakeSkipsTheTick(t *testing.T) {
	const interval = time.Second
	clock := newFakeClock()
	var expired []int // polls whose deadline had passed on the loop's clock when they started
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchdog := time.AfterFunc(5*time.Second, cancel)
	defer watchdog.Stop()
	const stop = 5
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(pctx context.Context, n int) error {
		if n == stop {
			cancel()
			return pctx.Err()
		}
		if dl, _ := pctx.Deadline(); !dl.After(clock.Now()) {
			expired = append(expired, n)
			return fmt.Errorf("poll stopped: %w", context.DeadlineExceeded)
		}
		return nil
	}}
	sink := &recordingSink{}
	l := New(drv, device("D1", interval, time.Minute), sink, Options{Now: clock.Now})
	waits := 0
	l.waitHook = func(ctx context.Context, due time.Time) bool {
		if waits++; waits == 3 {
			due = due.Add(interval * 3 / 2) // tick 2 is served 1.5 intervals late
		}
		return clock.waitUntil(ctx, due)
	}
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}

	if len(expired) > 0 {
		t.Errorf("polls %v started with their deadline already past", expired)
	}
	if got, want := fmt.Sprint(drv.pollTicks(interval)), "[0 1 3 4 5]"; got != want {
		t.Errorf("polls at ticks %s, want %s (the late tick 2 skipped)", got, want)
	}
	st := l.Stats()
	if st.TotalFailures != 0 || st.Overruns != 1 {
		t.Errorf("stats %+v: want no failure and 1 overrun", st)
	}
	for i, b := range sink.all() {
		for _, s := range b {
			if s.Quality != model.Good {
				t.Errorf("batch %d: %s %v %q", i, s.Tag, s.Quality, s.Reason)
			}
		}
	}
}
