package alarmout

import (
	"context"
	"sync"
	"testing"
	"time"

	"hazgate/drivers"
	gpiodrv "hazgate/drivers/gpio"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
)

func TestWant(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	beacon := config.AlarmOutput{Tag: "XA-1", Colours: []string{config.ColourRed}}
	horn := config.AlarmOutput{Tag: "XA-2", Colours: []string{config.ColourRed, config.ColourOrange}, Unacknowledged: true}
	red := func(s rules.State) rules.ActiveAlarm {
		return rules.ActiveAlarm{Tag: "LT-1", Level: "hh", Colour: config.ColourRed, State: s, Condition: s == rules.ActiveUnacked || s == rules.ActiveAcked}
	}
	latched := red(rules.ActiveUnacked)
	latched.Condition = false // a latching alarm whose process returned
	shelved := red(rules.ActiveUnacked)
	shelved.ShelvedUntil = now.Add(time.Hour)
	expired := red(rules.ActiveUnacked)
	expired.ShelvedUntil = now.Add(-time.Second)
	orange := rules.ActiveAlarm{Tag: "LT-1", Level: "h", Colour: config.ColourOrange, State: rules.ActiveUnacked, Condition: true}
	for _, c := range []struct {
		name         string
		active       []rules.ActiveAlarm
		beacon, horn bool
	}{
		{"none", nil, false, false},
		{"red unacknowledged", []rules.ActiveAlarm{red(rules.ActiveUnacked)}, true, true},
		{"red acknowledged", []rules.ActiveAlarm{red(rules.ActiveAcked)}, true, false},
		{"red returned, not yet acknowledged", []rules.ActiveAlarm{red(rules.ReturnedUnacked)}, false, true},
		{"red latched after the process returned", []rules.ActiveAlarm{latched}, true, true},
		{"orange only", []rules.ActiveAlarm{orange}, false, true},
		{"red shelved", []rules.ActiveAlarm{shelved}, false, false},
		{"red, shelving expired", []rules.ActiveAlarm{expired}, true, true},
		{"normal", []rules.ActiveAlarm{red(rules.Normal)}, false, false},
	} {
		if got := Want(beacon, c.active, now); got != c.beacon {
			t.Errorf("%s: beacon %v, want %v", c.name, got, c.beacon)
		}
		if got := Want(horn, c.active, now); got != c.horn {
			t.Errorf("%s: horn %v, want %v", c.name, got, c.horn)
		}
	}
}

// alarms is the test's list of active alarms, read by the outputs from
// their goroutine.
type alarms struct {
	mu   sync.Mutex
	list []rules.ActiveAlarm
}

func (a *alarms) set(l ...rules.ActiveAlarm) {
	a.mu.Lock()
	a.list = l
	a.mu.Unlock()
}

func (a *alarms) get() []rules.ActiveAlarm {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]rules.ActiveAlarm(nil), a.list...)
}

type events struct {
	mu   sync.Mutex
	list []model.Event
}

func (e *events) add(ev model.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) count(k model.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A beacon and a horn on fake GPIO lines follow a red alarm: both on when
// it is raised, the horn off once acknowledged, the beacon off when it
// clears. A stuck line is reported once and its recovery once.
func TestOutputsFollowAlarms(t *testing.T) {
	src := `gateway: {id: gw, enterprise_code: E1}
uplink: {brokers: [tcp://127.0.0.1:1883]}
devices:
  - name: box-io
    protocol: gpio
    gpio: {backend: fake}
    tags:
      - {name: XA-1, kind: digital, writable: true, gpio: {pin: GPIO17, direction: out}}
      - {name: XA-2, kind: digital, writable: true, gpio: {pin: GPIO27, direction: out, active_low: true}}
alarm_outputs:
  - {tag: XA-1}
  - {tag: XA-2, colours: [red, orange], unacknowledged: true}
`
	cfg, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := gpiodrv.New(cfg.Devices[0], gpiodrv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	beacon, horn := drv.Fake().Pin("GPIO17"), drv.Fake().Pin("GPIO27")
	var al alarms
	var ev events
	o := New(cfg.AlarmOutputs, map[string]drivers.Writer{"XA-1": drv, "XA-2": drv}, al.get,
		Options{Period: 10 * time.Millisecond, RetryAfter: 30 * time.Millisecond, Report: ev.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// At start both are written off: the horn's active-low line goes high.
	waitFor(t, "outputs written off at start", func() bool { return beacon.Output() && horn.Output() && horn.High() })
	if beacon.High() {
		t.Fatal("beacon on with no alarm")
	}
	red := rules.ActiveAlarm{Tag: "LT-1", Level: "hh", Colour: config.ColourRed, State: rules.ActiveUnacked, Condition: true}
	al.set(red)
	waitFor(t, "beacon and horn on", func() bool { return beacon.High() && !horn.High() })
	red.State = rules.ActiveAcked
	al.set(red)
	waitFor(t, "horn silenced by the acknowledgement", func() bool { return horn.High() })
	if !beacon.High() {
		t.Fatal("beacon went out while the alarm is active")
	}

	beacon.Stick(true) // the beacon's driver stage fails: it stays on
	al.set()
	waitFor(t, "alarm_output_failed", func() bool { return ev.count(Failed) == 1 })
	w0 := beacon.Writes()
	waitFor(t, "two retries", func() bool { return beacon.Writes() >= w0+2 })
	if n := ev.count(Failed); n != 1 {
		t.Errorf("%d failure events for one failure", n)
	}
	beacon.Stick(false)
	waitFor(t, "beacon off and alarm_output_restored", func() bool { return !beacon.High() && ev.count(Restored) == 1 })
	if w := beacon.Writes(); w > 20 {
		t.Errorf("%d writes to the beacon: the outputs write on change and retry slowly, not every period", w)
	}
}
