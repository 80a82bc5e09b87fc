package interlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

const s = time.Second

func f(v float64) *float64 { return &v }

func plant(ils ...config.Interlock) *config.Config {
	return &config.Config{
		Devices: []config.Device{{Name: "PLC-1", CommLossAfter: config.Duration(10 * s), Tags: []config.Tag{
			{Name: "LT-101", Kind: config.KindLevel},
			{Name: "LSHH-101", Kind: config.KindDigital, Type: config.TypeBool},
			{Name: "GT-1", Kind: config.KindGas}, {Name: "GT-2", Kind: config.KindGas}, {Name: "GT-3", Kind: config.KindGas},
			{Name: "XV-101", Kind: config.KindDigital, Type: config.TypeBool, Writable: true},
			{Name: "XV-201", Kind: config.KindDigital, Type: config.TypeBool, Writable: true},
		}}},
		Interlocks: ils,
	}
}

func overfill(delay time.Duration) config.Interlock {
	return config.Interlock{Name: "IL-101", Condition: "LT-101 >= 18.5 or LSHH-101", OnDelay: config.Duration(delay),
		BadQuality: config.BadTrip, BypassMax: config.Duration(time.Hour),
		Actions: []config.Action{{Tag: "XV-101", Value: f(0)}}}
}

func sample(tag string, v float64, at time.Duration) model.Sample {
	return model.Sample{Tag: tag, Value: v, Time: t0.Add(at)}
}

func kinds(evs []model.Event) string {
	var b []string
	for _, e := range evs {
		b = append(b, string(e.Kind)+" "+e.Interlock)
	}
	return strings.Join(b, "; ")
}

func mustNew(t *testing.T, cfg *config.Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTripLatchReset(t *testing.T) {
	e := mustNew(t, plant(overfill(2*s)))
	feed := func(at time.Duration, lt float64) ([]model.Event, []Command) {
		return e.Process([]model.Sample{sample("LT-101", lt, at), sample("LSHH-101", 0, at)}, nil, nil)
	}
	if ev, c := feed(0, 18.6); len(ev)+len(c) != 0 {
		t.Fatalf("tripped before the on-delay: %s %v", kinds(ev), c)
	}
	feed(1*s, 18.0) // a spike shorter than the delay
	feed(2*s, 18.6)
	if ev, c := e.Tick(t0.Add(3900*time.Millisecond), nil, nil); len(ev)+len(c) != 0 {
		t.Fatalf("tripped early: %s", kinds(ev))
	}
	ev, cmds := e.Tick(t0.Add(4*s), nil, nil)
	if kinds(ev) != "interlock_tripped IL-101" || len(cmds) != 1 {
		t.Fatalf("at the delay: %s %v", kinds(ev), cmds)
	}
	want := Command{Interlock: "IL-101", Tag: "XV-101", Value: 0, Cause: t0.Add(4 * s)}
	if cmds[0] != want {
		t.Fatalf("command %+v, want %+v", cmds[0], want)
	}
	if ev[0].Values["LT-101"] != 18.6 || ev[0].Values["LSHH-101"] != 0 || ev[0].Colour != "red" ||
		ev[0].Message != "IL-101 tripped: LT-101 >= 18.5 or LSHH-101 (LT-101 = 18.6, LSHH-101 = 0)" {
		t.Fatalf("trip event %+v", ev[0])
	}
	// Latched: nothing more while it holds, nothing when it clears.
	if ev, c := feed(5*s, 19); len(ev)+len(c) != 0 {
		t.Fatalf("second trip: %s", kinds(ev))
	}
	if _, err := e.Reset("IL-101", "alice", t0.Add(6*s)); !errors.Is(err, ErrConditionHolds) {
		t.Fatalf("reset while high: %v", err)
	}
	if ev, _ := feed(7*s, 17); len(ev) != 0 || !e.Status()[0].Tripped {
		t.Fatalf("un-latched by itself: %s %+v", kinds(ev), e.Status())
	}
	ev, err := e.Reset("IL-101", "alice", t0.Add(8*s))
	if err != nil || kinds(ev) != "interlock_reset IL-101" || ev[0].Who != "alice" {
		t.Fatalf("reset: %v %s", err, kinds(ev))
	}
	if _, err := e.Reset("IL-101", "alice", t0.Add(9*s)); !errors.Is(err, ErrNotTripped) {
		t.Fatalf("second reset: %v", err)
	}
	if _, err := e.Reset("IL-999", "alice", t0.Add(9*s)); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	// Armed again.
	if ev, _ := feed(10*s, 0); len(ev) != 0 {
		t.Fatal(kinds(ev))
	}
	if ev, c := e.Process([]model.Sample{sample("LSHH-101", 1, 11*s)}, nil, nil); len(ev) != 0 || len(c) != 0 {
		t.Fatal("tripped without on-delay")
	}
	if ev, _ := e.Tick(t0.Add(13*s), nil, nil); kinds(ev) != "interlock_tripped IL-101" {
		t.Fatalf("second trip: %s", kinds(ev))
	}
}

func TestBadQuality(t *testing.T) {
	for _, tc := range []struct {
		policy string
		trips  bool
	}{{config.BadTrip, true}, {config.BadHold, false}} {
		t.Run(tc.policy, func(t *testing.T) {
			il := overfill(0)
			il.BadQuality = tc.policy
			e := mustNew(t, plant(il))
			e.Process([]model.Sample{sample("LT-101", 10, 0), sample("LSHH-101", 0, 0)}, nil, nil)
			ev, _ := e.Process([]model.Sample{
				{Tag: "LT-101", Quality: model.Bad, Reason: "timeout", Time: t0.Add(s)}, sample("LSHH-101", 0, s),
			}, nil, nil)
			if (len(ev) == 1) != tc.trips {
				t.Fatalf("bad input: events %s, want trip %v", kinds(ev), tc.trips)
			}
			if tc.trips && !strings.Contains(ev[0].Message, "LT-101 = 0 (bad)") {
				t.Fatalf("message %q does not show the bad input", ev[0].Message)
			}
		})
	}
	t.Run("stale input trips", func(t *testing.T) {
		e := mustNew(t, plant(overfill(0)))
		e.Process([]model.Sample{sample("LT-101", 10, 0), sample("LSHH-101", 0, 0)}, nil, nil)
		if ev, _ := e.Tick(t0.Add(9*s), nil, nil); len(ev) != 0 {
			t.Fatal(kinds(ev))
		}
		if ev, _ := e.Tick(t0.Add(10*s), nil, nil); kinds(ev) != "interlock_tripped IL-101" {
			t.Fatalf("no trip on stale inputs: %s", kinds(ev))
		}
	})
}

func TestVoteAndFirstOut(t *testing.T) {
	gas := config.Interlock{Name: "IL-201", Condition: "vote(2, GT-1 >= 50, GT-2 >= 50, GT-3 >= 50)",
		BadQuality: config.BadTrip, Actions: []config.Action{{Tag: "XV-201", Value: f(0)}}}
	e := mustNew(t, plant(overfill(0), gas))
	e.Process([]model.Sample{sample("GT-1", 60, 0), sample("GT-2", 10, 0), sample("GT-3", 10, 0)}, nil, nil)
	// GT-1 alone: 1oo3, no trip. Then in one batch the level trips IL-101
	// and GT-3 completes the vote: IL-201's condition began first? No:
	// both begin now; IL-101 is first in config order.
	ev, cmds := e.Process([]model.Sample{
		sample("LSHH-101", 0, s), sample("LT-101", 19, s), sample("GT-3", 55, s),
	}, nil, nil)
	if kinds(ev) != "interlock_tripped IL-101; interlock_tripped IL-201" || len(cmds) != 2 {
		t.Fatalf("events %s cmds %v", kinds(ev), cmds)
	}
	if ev[0].Reason != "first out" || !strings.HasSuffix(ev[0].Message, "first out of 2") ||
		!strings.HasSuffix(ev[1].Message, "tripped with first out IL-101") || !e.Status()[0].FirstOut {
		t.Fatalf("first out: %q / %q", ev[0].Message, ev[1].Message)
	}
}

func TestFirstOutByOnset(t *testing.T) {
	a := overfill(5 * s)
	b := config.Interlock{Name: "IL-201", Condition: "GT-1 >= 50", OnDelay: config.Duration(2 * s),
		BadQuality: config.BadTrip, Actions: []config.Action{{Tag: "XV-201", Value: f(0)}}}
	e := mustNew(t, plant(b, a)) // IL-201 first in config order
	e.Process([]model.Sample{sample("LT-101", 19, 0), sample("LSHH-101", 0, 0), sample("GT-1", 0, 0)}, nil, nil)
	e.Process([]model.Sample{sample("GT-1", 60, 3*s)}, nil, nil)
	ev, _ := e.Tick(t0.Add(5*s), nil, nil) // both complete now; IL-101 began at 0
	if kinds(ev) != "interlock_tripped IL-101; interlock_tripped IL-201" || ev[0].Reason != "first out" {
		t.Fatalf("events %s", kinds(ev))
	}
}

func TestBypass(t *testing.T) {
	e := mustNew(t, plant(overfill(0)))
	e.Process([]model.Sample{sample("LT-101", 10, 0), sample("LSHH-101", 0, 0)}, nil, nil)
	for _, c := range []struct {
		who, reason string
		until       time.Duration
		want        string
	}{
		{"", "maintenance", time.Minute, "say who"},
		{"bob", " ", time.Minute, "reason is required"},
		{"bob", "maintenance", 0, "not in the future"},
		{"bob", "maintenance", 2 * time.Hour, "longer than bypass_max 1h0m0s"},
	} {
		if _, err := e.Bypass("IL-101", c.who, c.reason, t0.Add(c.until), t0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("bypass %+v: %v", c, err)
		}
	}
	ev, err := e.Bypass("IL-101", "bob", "calibrating LT-101", t0.Add(30*s), t0)
	if err != nil || kinds(ev) != "bypass_on IL-101" || !ev[0].Until.Equal(t0.Add(30*s)) || ev[0].Who != "bob" || ev[0].Reason != "calibrating LT-101" {
		t.Fatalf("bypass: %v %+v", err, ev)
	}
	if st := e.Status()[0]; !st.Bypassed || st.BypassWho != "bob" {
		t.Fatalf("status %+v", st)
	}
	if ev, c := e.Process([]model.Sample{sample("LT-101", 19, s), sample("LSHH-101", 0, s)}, nil, nil); len(ev)+len(c) != 0 {
		t.Fatalf("tripped while bypassed: %s", kinds(ev))
	}
	e.Process([]model.Sample{sample("LT-101", 19, 25*s), sample("LSHH-101", 0, 25*s)}, nil, nil)
	if ev, _ := e.Tick(t0.Add(29*s), nil, nil); len(ev) != 0 {
		t.Fatal(kinds(ev))
	}
	// Expiry: reported, and the interlock trips at once on what holds.
	ev, cmds := e.Tick(t0.Add(30*s), nil, nil)
	if kinds(ev) != "bypass_expired IL-101; interlock_tripped IL-101" || len(cmds) != 1 {
		t.Fatalf("expiry: %s %v", kinds(ev), cmds)
	}
	if _, err := e.Unbypass("IL-101", "bob", t0.Add(31*s)); !errors.Is(err, ErrNotBypassed) {
		t.Fatal(err)
	}
	if _, err := e.Bypass("IL-101", "bob", "x", t0.Add(40*s), t0.Add(31*s)); err != nil {
		t.Fatal(err)
	}
	if ev, err := e.Unbypass("IL-101", "carol", t0.Add(32*s)); err != nil || kinds(ev) != "bypass_off IL-101" || ev[0].Who != "carol" {
		t.Fatalf("unbypass: %v %s", err, kinds(ev))
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	var ils []config.Interlock
	for i := range 50 {
		ils = append(ils, config.Interlock{Name: fmt.Sprint("IL-", i), Condition: "LT-101 >= 18.5 or vote(2, GT-1 > 50, GT-2 > 50, GT-3 > 50)",
			BadQuality: config.BadTrip, Actions: []config.Action{{Tag: "XV-101", Value: f(0)}}})
	}
	e := mustNew(t, plant(ils...))
	smp := []model.Sample{sample("LT-101", 10, 0), sample("GT-1", 1, 0), sample("GT-2", 1, 0), sample("GT-3", 1, 0)}
	ev := make([]model.Event, 0, 8)
	cmds := make([]Command, 0, 8)
	i := 0
	n := testing.AllocsPerRun(100, func() {
		i++
		for j := range smp {
			smp[j].Time = t0.Add(time.Duration(i) * s)
		}
		ev, cmds = e.Process(smp, ev[:0], cmds[:0])
		ev, cmds = e.Tick(t0.Add(time.Duration(i)*s), ev, cmds)
	})
	if n != 0 || len(ev) != 0 {
		t.Fatalf("allocs %v, events %d", n, len(ev))
	}
}

// writer is an in-test drivers.Writer that records writes, fails the
// first fails of them, and can be slowed down.
type writer struct {
	mu     sync.Mutex
	writes []string
	fails  int
	delay  time.Duration
}

func (w *writer) Write(ctx context.Context, tag string, v float64) error {
	if w.delay > 0 {
		select {
		case <-time.After(w.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, fmt.Sprintf("%s=%g", tag, v))
	if w.fails > 0 {
		w.fails--
		return errors.New("read-back does not match")
	}
	return nil
}

// collect waits (bounded) for n events from a.
func collect(t *testing.T, a *Actuator, n int) []model.Event {
	t.Helper()
	var out []model.Event
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case <-a.Ready():
			out = a.Drain(out)
		case <-deadline:
			t.Fatalf("got %d events, want %d: %s", len(out), n, kinds(out))
		}
	}
	return out
}

func TestActuator(t *testing.T) {
	ok := &writer{}
	flaky := &writer{fails: 1}
	broken := &writer{fails: 100}
	slow := &writer{delay: 5 * time.Second}
	a := NewActuator(map[string]drivers.Writer{"XV-1": ok, "XV-2": flaky, "XV-3": broken, "XV-4": slow},
		ActuatorOptions{Timeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	cause := time.Now()
	start := time.Now()
	for _, tag := range []string{"XV-4", "XV-1", "XV-2", "XV-3", "XV-9"} {
		a.Submit(Command{Interlock: "IL-1", Tag: tag, Value: 0, Cause: cause})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Submit blocked for %v", d)
	}
	got := map[string]model.Event{}
	for _, ev := range collect(t, a, 5) {
		got[ev.Tag] = ev
	}
	for tag, kind := range map[string]model.EventKind{"XV-1": model.InterlockAction, "XV-2": model.InterlockAction,
		"XV-3": model.InterlockActionFailed, "XV-4": model.InterlockActionFailed, "XV-9": model.InterlockActionFailed} {
		if got[tag].Kind != kind {
			t.Errorf("%s: %s (%s), want %s", tag, got[tag].Kind, got[tag].Message, kind)
		}
	}
	if len(flaky.writes) != 2 || len(broken.writes) != 2 || len(ok.writes) != 1 {
		t.Fatalf("attempts: ok %v flaky %v broken %v, want 1, 2 (one retry), 2", ok.writes, flaky.writes, broken.writes)
	}
	if !strings.Contains(got["XV-4"].Reason, "deadline") || got["XV-3"].Colour != "red" {
		t.Fatalf("failures: %+v / %+v", got["XV-4"], got["XV-3"])
	}
}

// TestStartUpGrace: before the first poll the inputs are unknown, not bad;
// an input that never reports becomes bad after comm_loss_after.
func TestStartUpGrace(t *testing.T) {
	e := mustNew(t, plant(overfill(0)))
	if ev, c := e.Tick(t0, nil, nil); len(ev)+len(c) != 0 {
		t.Fatalf("tripped at start: %s", kinds(ev))
	}
	// LT-101 reports, LSHH-101 never does.
	e.Process([]model.Sample{sample("LT-101", 10, 1*s)}, nil, nil)
	if ev, _ := e.Tick(t0.Add(9*s), nil, nil); len(ev) != 0 {
		t.Fatalf("tripped during the grace: %s", kinds(ev))
	}
	ev, _ := e.Tick(t0.Add(10*s), nil, nil)
	if kinds(ev) != "interlock_tripped IL-101" || !strings.Contains(ev[0].Message, "LSHH-101 = 0 (bad)") {
		t.Fatalf("silent input after comm_loss_after: %s", kinds(ev))
	}
}

func TestNoteAction(t *testing.T) {
	e := mustNew(t, plant(overfill(0)))
	e.NoteAction(model.Event{Kind: model.InterlockActionFailed, Interlock: "IL-101", Tag: "XV-101"})
	if st := e.Status()[0]; fmt.Sprint(st.FailedOutputs) != "[XV-101]" {
		t.Fatalf("failed outputs %v", st.FailedOutputs)
	}
	e.NoteAction(model.Event{Kind: model.InterlockAction, Interlock: "IL-101", Tag: "XV-101"})
	if st := e.Status()[0]; len(st.FailedOutputs) != 0 {
		t.Fatalf("failed outputs after a good write %v", st.FailedOutputs)
	}
}
