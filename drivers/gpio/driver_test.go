package gpio

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// parse loads a gateway config with the given devices, so the driver sees
// what the validator made of them (defaults, bool type).
func parse(t *testing.T, devices string) *config.Config {
	t.Helper()
	src := "gateway: {id: gw, enterprise_code: E1}\nuplink: {brokers: [tcp://127.0.0.1:1883]}\ndevices:\n" + devices
	cfg, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clock is a settable time for debouncing.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)} }
func poll(t *testing.T, d *Driver) []model.Sample {
	t.Helper()
	s, err := d.Poll(context.Background())
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if len(s) != len(d.Tags()) {
		t.Fatalf("%d samples for %d tags", len(s), len(d.Tags()))
	}
	return s
}

func newDriver(t *testing.T, cfg *config.Config, c *clock) *Driver {
	t.Helper()
	opts := Options{}
	if c != nil {
		opts.Now = c.now
	}
	d, err := New(cfg.Devices[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

const contacts = `  - name: box-io
    protocol: gpio
    gpio: {backend: fake}
    tags:
      # a gas controller's alarm relay: a contact to ground that closes on
      # alarm, read with the pull-up (closed = low = active)
      - {name: GSA-201, kind: digital, gpio: {pin: GPIO22, direction: in, pull: up, active_low: true}}
      # a door switch that drives the line high when open
      - {name: ZS-301, kind: digital, gpio: {pin: GPIO23, direction: in, pull: down}}
      # the mains status of a dual supply: a contact held closed while healthy
      - {name: EA-401, kind: digital, gpio: {pin: gpiochip0/5, direction: in, pull: up, active_low: true}}
`

// Inputs read as logical digital tags with Good quality; a line whose read
// fails is Bad with the reason while the others stay Good.
func TestInputs(t *testing.T) {
	d := newDriver(t, parse(t, contacts), nil)
	f := d.Fake()
	if f == nil {
		t.Fatal("backend fake has no Fake")
	}
	// Nothing drives the lines: the biases decide. Every contact is open.
	want := func(vals ...float64) {
		t.Helper()
		s := poll(t, d)
		for i, v := range vals {
			if s[i].Quality != model.Good || s[i].Value != v || s[i].Tag != d.Tags()[i] || s[i].Device != "box-io" {
				t.Errorf("sample %d = %+v, want %s = %g good", i, s[i], d.Tags()[i], v)
			}
		}
	}
	want(0, 0, 0)
	if f.Pin("GPIO22").Output() {
		t.Fatal("an input was made an output")
	}

	f.Pin("GPIO22").Set(false)      // the gas controller's relay closes: alarm
	f.Pin("GPIO23").Set(true)       // the door opens
	f.Pin("gpiochip0/5").Set(false) // mains healthy
	want(1, 1, 1)

	f.Pin("GPIO23").FailReads(errors.New("EIO"))
	s := poll(t, d)
	if s[1].Quality != model.Bad || !strings.Contains(s[1].Reason, "read GPIO23: EIO") || !strings.HasPrefix(s[1].Reason, model.ReasonDeviceDown) {
		t.Errorf("failed read: %+v", s[1])
	}
	if s[0].Quality != model.Good || s[2].Quality != model.Good {
		t.Errorf("one failed line spoilt the others: %+v", s)
	}
	f.Pin("GPIO23").FailReads(nil)
	f.Pin("GPIO22").Float() // the relay opens again
	want(0, 1, 1)
}

// A line that cannot be opened is Bad and retried at every poll; the
// device fails as a whole only when no line opens.
func TestOpenFailures(t *testing.T) {
	cfg := parse(t, contacts)
	f := NewFake()
	f.Pin("GPIO23").FailOpen(errors.New("device or resource busy"))
	d, err := New(cfg.Devices[0], Options{Fake: f})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := poll(t, d)
	if s[1].Quality != model.Bad || s[1].Reason != "device down: open GPIO23: device or resource busy" {
		t.Errorf("busy line: %+v", s[1])
	}
	if s[0].Quality != model.Good {
		t.Errorf("GPIO22: %+v", s[0])
	}
	f.Pin("GPIO23").FailOpen(nil)
	if s = poll(t, d); s[1].Quality != model.Good {
		t.Errorf("not reopened: %+v", s[1])
	}

	// Every line refused: the poll fails, so the scheduler backs off and
	// reports the device lost.
	all := NewFake()
	for _, p := range []string{"GPIO22", "GPIO23", "gpiochip0/5"} {
		all.Pin(p).FailOpen(errors.New("permission denied"))
	}
	d2, _ := New(cfg.Devices[0], Options{Fake: all})
	if _, err := d2.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "no line could be opened") {
		t.Errorf("poll with no line: %v", err)
	}
}

// A new input level counts once it has been read at polls spanning the
// debounce time; a bounce shorter than that is never seen.
func TestDebounce(t *testing.T) {
	cfg := parse(t, `  - name: box-io
    protocol: gpio
    interval: 20ms
    timeout: 10ms
    gpio: {backend: fake}
    tags: [{name: ZS-301, kind: digital, gpio: {pin: GPIO23, direction: in, debounce: 50ms}}]
`)
	c := newClock()
	d := newDriver(t, cfg, c)
	p := d.Fake().Pin("GPIO23")
	step := func(high bool, want float64) {
		t.Helper()
		p.Set(high)
		if s := poll(t, d); s[0].Value != want || s[0].Quality != model.Good {
			t.Fatalf("at +%v with the line %v: %+v, want %g", c.t.Sub(newClock().t), high, s[0], want)
		}
		c.advance(20 * time.Millisecond)
	}
	step(false, 0) // the first read is passed on at once
	step(true, 0)  // +20ms: a bounce starts
	step(false, 0) // +40ms: gone
	step(true, 0)  // +60ms: high again, from here
	step(true, 0)  // +80ms: 20ms of it
	step(true, 0)  // +100ms: 40ms
	step(true, 1)  // +120ms: 60ms >= 50ms: accepted
	step(false, 1) // +140ms
	step(false, 1) // +160ms
	step(false, 1) // +180ms: 40ms
	step(false, 0) // +200ms: 60ms
}

const outputs = `  - name: box-io
    protocol: gpio
    gpio: {backend: fake}
    tags:
      - {name: XA-901, description: beacon, kind: digital, writable: true, gpio: {pin: GPIO17, direction: out}}
      # a de-energise-to-trip relay with an active-low driver: held
      # energised (1) while healthy, so the line idles low
      - {name: XY-902, kind: digital, writable: true, gpio: {pin: GPIO27, direction: out, active_low: true, initial: 1}}
      - {name: XL-903, description: healthy lamp, kind: digital, gpio: {pin: GPIO4, direction: out, initial: 1}}
      - {name: ZS-301, kind: digital, gpio: {pin: GPIO23, direction: in}}
`

// Outputs are driven to their initial state when opened, written as
// logical values with read-back, and read back by Poll; a stuck output
// fails its write; only writable outputs are written.
func TestOutputs(t *testing.T) {
	d := newDriver(t, parse(t, outputs), nil)
	f := d.Fake()
	beacon, relay, lamp := f.Pin("GPIO17"), f.Pin("GPIO27"), f.Pin("GPIO4")
	ctx := context.Background()

	// A write before the first poll opens the line.
	if err := d.Write(ctx, "XA-901", 1); err != nil {
		t.Fatalf("beacon on: %v", err)
	}
	if !beacon.Output() || !beacon.High() {
		t.Fatalf("beacon line: output %v high %v, want an output driven high", beacon.Output(), beacon.High())
	}
	s := poll(t, d)
	if s[0].Value != 1 || s[1].Value != 1 || s[2].Value != 1 || s[0].Quality != model.Good {
		t.Errorf("read back: %+v", s)
	}
	if relay.High() || !relay.Output() || !lamp.High() {
		t.Errorf("initial states: relay high %v (want low: active-low, energised), lamp high %v", relay.High(), lamp.High())
	}

	if err := d.Write(ctx, "XY-902", 0); err != nil { // trip: de-energise
		t.Fatal(err)
	}
	if !relay.High() {
		t.Error("relay tripped but its active-low line is still low")
	}
	if s = poll(t, d); s[1].Value != 0 {
		t.Errorf("relay read back %+v", s[1])
	}

	beacon.Stick(true)
	err := d.Write(ctx, "XA-901", 0)
	if err == nil || !strings.Contains(err.Error(), "read back 1, wrote 0") {
		t.Errorf("stuck output: %v", err)
	}
	beacon.Stick(false)

	for _, c := range []struct {
		tag   string
		value float64
		want  string
	}{
		{"XL-903", 0, "not writable"},
		{"ZS-301", 1, "input line"},
		{"XA-901", 0.5, "takes 0 or 1"},
		{"PT-1", 1, `no tag "PT-1"`},
	} {
		before := beacon.Writes() + lamp.Writes()
		if err := d.Write(ctx, c.tag, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("write %s = %g: %v, want %q", c.tag, c.value, err, c.want)
		}
		if beacon.Writes()+lamp.Writes() != before {
			t.Errorf("write %s = %g reached a line", c.tag, c.value)
		}
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Write(ctx2, "XA-901", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("write after cancel: %v", err)
	}
}

// The host backend opens real lines through /dev/gpiochip*. Where there
// is none (a container, CI), each line is Bad with a reason that says so;
// where there is one, a line name that cannot exist is reported as such.
// No line of the machine is touched.
func TestHostBackendReportsMissingLines(t *testing.T) {
	cfg := parse(t, `  - name: box-io
    protocol: gpio
    gpio: {backend: host}
    tags: [{name: ZS-1, kind: digital, gpio: {pin: HAZGATE-NO-SUCH-LINE, direction: in}}]
`)
	d := newDriver(t, cfg, nil)
	if d.Fake() != nil {
		t.Fatal("host backend has a Fake")
	}
	s, err := d.Poll(context.Background())
	if err == nil {
		t.Fatal("poll of a line that does not exist succeeded")
	}
	chips, _ := filepath.Glob("/dev/gpiochip*")
	want := "no GPIO chip found"
	if len(chips) > 0 {
		want = "no line named HAZGATE-NO-SUCH-LINE"
	}
	if len(s) != 1 || s[0].Quality != model.Bad || !strings.Contains(s[0].Reason, want) {
		t.Errorf("samples %+v, want Bad with %q", s, want)
	}
	t.Logf("%d GPIO chips here; reason %q", len(chips), s[0].Reason)
}

// Close releases the lines; the next poll opens them again and drives the
// outputs to their initial state.
func TestCloseReopens(t *testing.T) {
	d := newDriver(t, parse(t, outputs), nil)
	if err := d.Write(context.Background(), "XA-901", 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if s := poll(t, d); s[0].Value != 0 || !d.Fake().Pin("GPIO17").Output() {
		t.Errorf("after reopen the beacon reads %+v, want its initial 0", s[0])
	}
}
