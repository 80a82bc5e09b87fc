package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// fakeDriver is a test double for a device driver: it records when each
// Poll started and how long it lasted, and behaves as behave says.
type fakeDriver struct {
	name string
	tags []string
	// behave decides what the n-th call (1-based) does. nil = answer at once.
	behave func(ctx context.Context, n int) error

	mu        sync.Mutex
	starts    []time.Time
	ends      []time.Time
	deadlines []time.Time // of each Poll's context: the next tick's due time
	closes    int
}

type hang struct{} // behave result marker: block until ctx is done

func (d *fakeDriver) Name() string   { return d.name }
func (d *fakeDriver) Tags() []string { return d.tags }

func (d *fakeDriver) Poll(ctx context.Context) ([]model.Sample, error) {
	now := time.Now()
	d.mu.Lock()
	d.starts = append(d.starts, now)
	dl, _ := ctx.Deadline()
	d.deadlines = append(d.deadlines, dl)
	n := len(d.starts)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.ends = append(d.ends, time.Now())
		d.mu.Unlock()
	}()
	if d.behave != nil {
		if err := d.behave(ctx, n); err != nil {
			return nil, err
		}
	}
	out := make([]model.Sample, len(d.tags))
	for i, t := range d.tags {
		out[i] = model.Sample{Tag: t, Device: d.name, Value: float64(n), Quality: model.Good, Time: now}
	}
	return out, nil
}

func (d *fakeDriver) Close() error {
	d.mu.Lock()
	d.closes++
	d.mu.Unlock()
	return nil
}

func (d *fakeDriver) pollStarts() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.starts...)
}

// pollTicks is the tick number of each poll, counted from the first. It
// is read off the poll's deadline, which the loop sets to the next tick's
// due time, so it does not depend on how late the goroutine ran. (The
// last poll's deadline may be the test's own, earlier than its next tick:
// hence rounding up.)
func (d *fakeDriver) pollTicks(interval time.Duration) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]int, len(d.deadlines))
	for i, dl := range d.deadlines {
		out[i] = int(math.Ceil(float64(dl.Sub(d.deadlines[0]))/float64(interval) - 1e-6))
	}
	return out
}

func (d *fakeDriver) closeCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closes
}

// blockUntilDone is a behaviour: the device never answers.
func blockUntilDone(ctx context.Context, _ int) error {
	<-ctx.Done()
	return fmt.Errorf("read holding registers: %w", ctx.Err())
}

// recordingSink keeps every batch it was given.
type recordingSink struct {
	mu       sync.Mutex
	batches  [][]model.Sample
	delay    func(n int) time.Duration // optional backpressure per batch (1-based)
	onSubmit func(n int)               // optional hook per batch (1-based)
}

func (s *recordingSink) Submit(ctx context.Context, samples []model.Sample) error {
	s.mu.Lock()
	s.batches = append(s.batches, append([]model.Sample(nil), samples...))
	n := len(s.batches)
	s.mu.Unlock()
	if s.onSubmit != nil {
		s.onSubmit(n)
	}
	if s.delay != nil {
		select {
		case <-time.After(s.delay(n)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *recordingSink) all() [][]model.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]model.Sample(nil), s.batches...)
}

func device(name string, interval, backoffMax time.Duration) config.Device {
	return config.Device{Name: name, Interval: config.Duration(interval), BackoffMax: config.Duration(backoffMax)}
}

// runFor runs loops for d and waits until all of them returned.
func runFor(t *testing.T, d time.Duration, loops ...*Loop) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(loops))
	for _, l := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- l.Run(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d + 2*time.Second):
		t.Fatal("loops did not return after their context ended")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// scheduleOffsets is how late each time is on a schedule of the given
// interval, taking as origin the earliest possible one (the first poll may
// be late itself, for example because it connects first).
func scheduleOffsets(times []time.Time, interval time.Duration) []time.Duration {
	if len(times) == 0 {
		return nil
	}
	origin := times[0]
	for k, at := range times {
		if o := at.Add(-time.Duration(k) * interval); o.Before(origin) {
			origin = o
		}
	}
	out := make([]time.Duration, len(times))
	for k, at := range times {
		out[k] = at.Sub(origin) - time.Duration(k)*interval
	}
	return out
}

func TestNoDrift(t *testing.T) {
	retryTiming(t, func(timing *attempt) {
		const interval = 20 * time.Millisecond
		// Each poll costs 4..8 ms: a loop that sleeps an interval after the
		// work would fall behind by ~300 ms over a second. The per-poll bound
		// (10 ms) leaves room for a loaded 2-core test machine; drift adds up
		// and breaks it within three polls.
		drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(ctx context.Context, n int) error {
			time.Sleep(time.Duration(4+n%5) * time.Millisecond)
			return nil
		}}
		sink := &recordingSink{}
		l := New(drv, device("D1", interval, time.Second), sink, Options{})
		runFor(t, time.Second, l)

		starts := drv.pollStarts()
		if n := len(starts); n < 48 || n > 52 {
			timing.Fatalf("%d polls in 1s at %v, want 50±2", n, interval)
		}
		offs := scheduleOffsets(starts, interval)
		for k, off := range offs {
			if off > 10*time.Millisecond {
				timing.Errorf("poll %d started %v late on the schedule start+k*interval", k, off)
			}
		}
		timing.Logf("%d polls, offsets from the schedule %v", len(starts), offs)
		st := l.Stats()
		if st.Polls != uint64(len(starts)) || st.Overruns != 0 || st.State != StateStopped || st.LastGoodPoll.IsZero() {
			timing.Errorf("stats = %+v", st)
		}
		// The last poll may have been cut off by the end of the run.
		if got := len(sink.all()); got != len(starts) && got != len(starts)-1 {
			timing.Errorf("sink got %d batches for %d polls", got, len(starts))
		}
	})
}

func TestHangingDeviceDoesNotDelayAnother(t *testing.T) {
	retryTiming(t, func(timing *attempt) {
		const interval = 100 * time.Millisecond
		dead := &fakeDriver{name: "DEAD", tags: []string{"PT-201", "PT-202"}, behave: blockUntilDone}
		healthy := &fakeDriver{name: "OK", tags: []string{"LT-101"}}
		deadSink, okSink := &recordingSink{}, &recordingSink{}
		deadLoop := New(dead, device("DEAD", interval, 200*time.Millisecond), deadSink, Options{})
		okLoop := New(healthy, device("OK", interval, time.Second), okSink, Options{})
		runFor(t, 2*time.Second, deadLoop, okLoop)

		starts := healthy.pollStarts()
		if n := len(starts); n < 18 || n > 22 {
			timing.Fatalf("healthy device polled %d times in 2s, want 20±10%%", n)
		}
		for k, off := range scheduleOffsets(starts, interval) {
			if off > interval/10 {
				timing.Errorf("healthy poll %d is %v late on its schedule (more than 10%% of the interval)", k, off)
			}
		}

		// Every hanging poll was cut off by its deadline: one interval at most.
		dead.mu.Lock()
		if len(dead.starts) < 3 {
			timing.Errorf("dead device polled only %d times in 2s: it should be retried", len(dead.starts))
		}
		for i := range dead.ends {
			if d := dead.ends[i].Sub(dead.starts[i]); d > interval+interval/5 {
				timing.Errorf("hanging poll %d lasted %v, more than one interval", i, d)
			}
		}
		dead.mu.Unlock()

		batches := deadSink.all()
		if len(batches) < 15 {
			timing.Errorf("dead device submitted %d batches in 2s, want about one per tick", len(batches))
		}
		for _, b := range batches {
			for _, s := range b {
				if s.Quality != model.Bad || !(s.Reason == model.ReasonTimeout || strings.HasPrefix(s.Reason, model.ReasonDeviceDown+": ")) {
					timing.Fatalf("dead device sample %+v, want bad with reason timeout or device down", s)
				}
			}
		}
		if st := deadLoop.Stats(); st.TotalFailures < 3 || !st.LastGoodPoll.IsZero() {
			timing.Errorf("dead loop stats %+v", st)
		}
	})
}

// fakeClock drives a loop's schedule without real waiting: the loop's wait
// moves the clock straight to the due time. Only for tests of the loop's
// decisions (which tick polls, which backs off); timing itself is tested
// on the real clock above.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) waitUntil(ctx context.Context, t time.Time) bool {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
	return ctx.Err() == nil
}

// runFake runs a loop on a fake clock until the driver's stop-th poll, which
// is cancelled.
func runFake(t *testing.T, drv *fakeDriver, dev config.Device, sink Sink, log *slog.Logger, clock *fakeClock, stop int) *Loop {
	t.Helper()
	l := New(drv, dev, sink, Options{Now: clock.Now, Logger: log})
	l.waitHook = clock.waitUntil
	// No deadline on ctx: the loop compares deadlines with its (fake) clock.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchdog := time.AfterFunc(5*time.Second, cancel)
	defer watchdog.Stop()
	inner := drv.behave
	drv.behave = func(pctx context.Context, n int) error {
		if n == stop {
			cancel()
			return pctx.Err()
		}
		if inner != nil {
			return inner(pctx, n)
		}
		return nil
	}
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(drv.pollStarts()) != stop {
		t.Fatalf("loop stopped after %d polls, want %d", len(drv.pollStarts()), stop)
	}
	return l
}

// newFakeClock starts at the real time so that poll deadlines computed on
// it stay in the real future and never expire by themselves.
func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func TestBackoffDoublesAndCaps(t *testing.T) {
	const interval = time.Second
	refused := errors.New("dial tcp 127.0.0.1:502: connection refused")
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101", "TT-101"}, behave: func(context.Context, int) error { return refused }}
	sink := &recordingSink{}
	clock := newFakeClock()
	start := clock.Now()
	// Back-off: 1, 2, 4 intervals, then capped at 4 (the jitter shortens it
	// by at most 20%, never below 3 intervals).
	l := runFake(t, drv, device("D1", interval, 4*interval), sink, nil, clock, 9)

	got := drv.pollTicks(interval)
	want := []int{0, 1, 3, 7, 11, 15, 19, 23, 27}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("polls at ticks %v, want %v", got, want)
	}

	// Every tick has exactly one batch, at the tick's time: the failed
	// poll's, or a back-off batch.
	batches := sink.all()
	if len(batches) != 27 {
		t.Fatalf("%d batches for ticks 0..26, want 27", len(batches))
	}
	for i, b := range batches {
		if len(b) != 2 {
			t.Fatalf("batch %d has %d samples, want one per tag", i, len(b))
		}
		for _, s := range b {
			want := model.ReasonDeviceDown + ": " + refused.Error()
			if s.Quality != model.Bad || s.Reason != want || s.Device != "D1" || !s.Time.Equal(start.Add(time.Duration(i)*interval)) {
				t.Fatalf("batch %d sample %+v, want bad with reason %q at tick %d", i, s, want, i)
			}
		}
	}
	st := l.Stats()
	if st.Failures != 8 || st.TotalFailures != 8 || st.BackoffTicks != 27-8 || st.LastError != refused.Error() || st.Overruns != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBackoffStates(t *testing.T) {
	const interval = time.Second
	clock := newFakeClock()
	var l *Loop
	var states []State
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(_ context.Context, n int) error {
		states = append(states, l.Stats().State) // as seen while the n-th poll runs
		if n <= 3 {
			return errors.New("refused")
		}
		return nil
	}}
	sink := &recordingSink{onSubmit: func(int) { states = append(states, l.Stats().State) }}
	l = New(drv, device("D1", interval, time.Minute), sink, Options{Now: clock.Now})
	l.waitHook = clock.waitUntil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(5 * time.Second); len(drv.pollStarts()) < 5 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Seen by: poll 1 (starting), its submit (down: the retry is the next
	// tick); poll 2 (down), its submit (backoff: retry at tick 3); back-off
	// tick 2; poll 3 at tick 3 (down), its submit; back-off ticks 4..6;
	// poll 4 at tick 7 (down), its submit (up).
	want := "[starting down down backoff backoff down backoff backoff backoff backoff down up]"
	if got := fmt.Sprint(states[:12]); got != want {
		t.Errorf("states %s, want %s", got, want)
	}
}

func TestRecoveryResetsBackoff(t *testing.T) {
	const interval = time.Second
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(_ context.Context, n int) error {
		if n <= 3 || n == 7 || n == 8 {
			return fmt.Errorf("read: connection reset by peer (call %d)", n)
		}
		return nil
	}}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	l := runFake(t, drv, device("D1", interval, time.Minute), &recordingSink{}, log, newFakeClock(), 13)

	got := drv.pollTicks(interval)
	want := []int{0, 1, 3, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("polls at ticks %v, want %v", got, want)
	}
	if st := l.Stats(); st.Failures != 0 || st.TotalFailures != 5 || st.LastGoodPoll.IsZero() {
		t.Errorf("stats after recovery = %+v", st)
	}
	// State changes are logged once each, not every failed poll.
	if down, up := strings.Count(logs.String(), "msg=\"device down\""), strings.Count(logs.String(), "msg=\"device up\""); down != 2 || up != 2 {
		t.Errorf("logged %d 'device down' and %d 'device up', want 2 and 2:\n%s", down, up, logs.String())
	}
}

func TestOverrunSkipsTicks(t *testing.T) {
	const interval = time.Second
	clock := newFakeClock()
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}}
	// The pipeline stalls for 2.5 intervals on the first batch.
	sink := &recordingSink{onSubmit: func(n int) {
		if n == 1 {
			clock.Advance(interval * 5 / 2)
		}
	}}
	l := runFake(t, drv, device("D1", interval, time.Minute), sink, nil, clock, 6)

	got := drv.pollTicks(interval)
	want := []int{0, 3, 4, 5, 6, 7}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("polls at ticks %v, want %v (missed ticks skipped, no burst)", got, want)
	}
	if st := l.Stats(); st.Overruns != 2 {
		t.Errorf("overruns = %d, want 2", st.Overruns)
	}
	if n := len(sink.all()); n != 5 {
		t.Errorf("%d batches, want 5: a healthy device's skipped ticks get no samples", n)
	}
}

// TestDownDeviceTicksAreBackfilled: a device that times out at the
// deadline (the next tick) makes the loop miss that tick; while the device
// is down, such a tick gets bad samples like a back-off tick.
func TestDownDeviceTicksAreBackfilled(t *testing.T) {
	const interval = time.Second
	clock := newFakeClock()
	start := clock.Now()
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(ctx context.Context, _ int) error {
		clock.Advance(interval + time.Millisecond) // the driver gave up just after the deadline
		return fmt.Errorf("read holding registers: %w", context.DeadlineExceeded)
	}}
	sink := &recordingSink{}
	l := runFake(t, drv, device("D1", interval, 4*interval), sink, nil, clock, 5)

	got := drv.pollTicks(interval)
	want := []int{0, 2, 4, 8, 12}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("polls at ticks %v, want %v", got, want)
	}
	batches := sink.all()
	if len(batches) != 12 {
		t.Fatalf("%d batches for ticks 0..11, want 12", len(batches))
	}
	polled := map[int]bool{0: true, 2: true, 4: true, 8: true}
	for i, b := range batches {
		s := b[0]
		// Back-off ticks repeat the failed poll's short reason, not the
		// whole error text.
		wantReason := model.ReasonDeviceDown + ": " + model.ReasonTimeout
		if polled[i] {
			wantReason = model.ReasonTimeout
		}
		if s.Quality != model.Bad || s.Reason != wantReason || !s.Time.Equal(start.Add(time.Duration(i)*interval)) {
			t.Fatalf("batch %d: %+v, want bad %q at tick %d", i, s, wantReason, i)
		}
	}
	if st := l.Stats(); st.Overruns != 4 || st.TotalFailures != 4 {
		t.Errorf("stats = %+v, want 4 overruns (one per timed-out poll) and 4 failures", st)
	}
}

func TestDriverPanicIsAFailedPoll(t *testing.T) {
	drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: func(_ context.Context, n int) error {
		if n == 2 {
			panic("index out of range")
		}
		return nil
	}}
	sink := &recordingSink{}
	l := runFake(t, drv, device("D1", time.Second, time.Minute), sink, nil, newFakeClock(), 4)
	if got := fmt.Sprint(drv.pollTicks(time.Second)); got != "[0 1 2 3]" {
		t.Fatalf("polls at ticks %s, want [0 1 2 3]", got)
	}
	b := sink.all()
	if len(b) != 3 || b[1][0].Quality != model.Bad || !strings.Contains(b[1][0].Reason, "driver panic: index out of range") || b[2][0].Quality != model.Good {
		t.Fatalf("batches %+v, want good, bad (panic), good", b)
	}
	if st := l.Stats(); st.TotalFailures != 1 || st.State != StateStopped {
		t.Errorf("stats %+v", st)
	}
}

func TestRunStopsPromptlyAndClosesDriver(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behave func(context.Context, int) error
	}{
		{"while a poll hangs", blockUntilDone},
		{"while waiting for the next tick", nil},
		{"while backing off", func(context.Context, int) error { return errors.New("refused") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := &fakeDriver{name: "D1", tags: []string{"LT-101"}, behave: tc.behave}
			l := New(drv, device("D1", 2*time.Second, 30*time.Second), &recordingSink{}, Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			for deadline := time.Now().Add(time.Second); len(drv.pollStarts()) == 0; {
				if time.Now().After(deadline) {
					t.Fatal("no poll within 1s")
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			cancel()
			stopped := time.Now()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				if d := time.Since(stopped); d > 100*time.Millisecond {
					t.Errorf("Run took %v to return", d)
				}
			case <-time.After(time.Second):
				t.Fatal("Run did not return within 1s of cancel")
			}
			if n := drv.closeCount(); n != 1 {
				t.Errorf("driver closed %d times, want 1", n)
			}
			if st := l.Stats(); st.State != StateStopped {
				t.Errorf("state %q, want stopped", st.State)
			}
		})
	}
}

func TestRunRejectsZeroInterval(t *testing.T) {
	drv := &fakeDriver{name: "D1"}
	err := New(drv, device("D1", 0, 0), &recordingSink{}, Options{}).Run(context.Background())
	if err == nil || drv.closeCount() != 1 {
		t.Fatalf("Run = %v, closes %d; want an error and the driver closed", err, drv.closeCount())
	}
}

func TestBackoffBounds(t *testing.T) {
	const interval = 100 * time.Millisecond
	l := New(&fakeDriver{}, device("D1", interval, 3*time.Second), &recordingSink{}, Options{})
	for n, base := range map[int]time.Duration{1: 100, 2: 200, 3: 400, 4: 800, 5: 1600, 6: 3000, 20: 3000, 1000: 3000} {
		base *= time.Millisecond
		for range 200 {
			d := l.backoff(n)
			if d > base || d < base*8/10 {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, base*8/10, base)
			}
		}
	}
}

// A first connection still being made (drivers.ErrConnecting) is logged
// as connecting, not as a device down; a real failure afterwards, or the
// same error once the device has been up, warns as before.
func TestConnectingIsNotDown(t *testing.T) {
	const interval = time.Second
	connecting := fmt.Errorf("opcua device %q: %w (context deadline exceeded)", "R-301", drivers.ErrConnecting)
	cases := []struct {
		name      string
		fail      map[int]error // poll number -> its error; others succeed
		connLogs  int
		downLogs  int
		upLogs    int
		stopAfter int
	}{
		{"connects after two slow polls", map[int]error{1: connecting, 2: connecting}, 1, 0, 1, 5},
		{"connect fails", map[int]error{1: connecting, 2: errors.New("get endpoints: connection refused")}, 1, 1, 1, 5},
		{"reconnecting after being up", map[int]error{1: nil, 2: connecting}, 0, 1, 1, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			drv := &fakeDriver{name: "R-301", tags: []string{"TT-301"}, behave: func(_ context.Context, n int) error { return c.fail[n] }}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			runFake(t, drv, device("R-301", interval, time.Minute), &recordingSink{}, log, newFakeClock(), c.stopAfter)
			s := logs.String()
			conn, down, up := strings.Count(s, `msg="device connecting"`), strings.Count(s, `msg="device down"`), strings.Count(s, `msg="device up"`)
			if conn != c.connLogs || down != c.downLogs || up != c.upLogs {
				t.Errorf("logged connecting %d, down %d, up %d; want %d, %d, %d:\n%s", conn, down, up, c.connLogs, c.downLogs, c.upLogs, s)
			}
		})
	}
}
