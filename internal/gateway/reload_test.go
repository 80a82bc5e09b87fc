package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/docs/schema"
	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/testkit"
)

// platform records what the broker delivers, checking every message
// against the contract's schemas.
type platform struct {
	t       *testing.T
	schemas *schema.Set

	mu      sync.Mutex
	times   map[string][]time.Time // tag -> acquisition times of its good samples
	events  []map[string]any
	invalid int
}

func newPlatform(t *testing.T, b *broker.Broker) *platform {
	t.Helper()
	s, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, schemas: s, times: map[string][]time.Time{}}
	if err := b.Subscribe("hazgate/#", p.handle); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *platform) handle(m broker.Message) {
	kind := schema.KindOfTopic(m.Topic)
	if kind == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.schemas.Validate(kind, m.Payload); err != nil {
		p.invalid++
		p.t.Errorf("%s: %v: %s", m.Topic, err, m.Payload)
		return
	}
	switch kind {
	case schema.Data:
		var d struct {
			Samples []struct {
				Tag     string `json:"tag"`
				Quality string `json:"quality"`
				Time    string `json:"time"`
			} `json:"samples"`
		}
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			p.t.Error(err)
			return
		}
		for _, s := range d.Samples {
			at, err := time.Parse(time.RFC3339Nano, s.Time)
			if err != nil {
				p.t.Error(err)
				continue
			}
			if s.Quality != "good" {
				continue // a timeout on a loaded machine says nothing about reloads
			}
			p.times[s.Tag] = append(p.times[s.Tag], at)
		}
	case schema.Event:
		var ev map[string]any
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			p.t.Error(err)
			return
		}
		p.events = append(p.events, ev)
	}
}

// eventsOf returns the events of kind received so far.
func (p *platform) eventsOf(kind string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, ev := range p.events {
		if ev["kind"] == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (p *platform) samples(tag string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.times[tag])
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reloadConfig is a gateway with device plc-a (LT-1 with a high-high
// alarm) and device plc-b (TT-1, and TT-2 when extraTag).
func reloadConfig(t *testing.T, dataDir, brokerURL, addrA, addrB string, extraTag bool, batchMax int) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`gateway: {id: gw-reload, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [%q], batch_max: %d}
devices:
  - name: plc-a
    protocol: modbus-tcp
    address: %s
    interval: 50ms
    timeout: 40ms
    tags:
      - {name: LT-1, kind: level, unit: m, area: holding, address: 0, range: {min: 0, max: 100}, alarms: {hh: 80}}
  - name: plc-b
    protocol: modbus-tcp
    address: %s
    interval: 50ms
    timeout: 40ms
    tags:
      - {name: TT-1, kind: temperature, unit: "°C", area: holding, address: 0, range: {min: 0, max: 100}}
`, dataDir, brokerURL, batchMax, addrA, addrB)
	if extraTag {
		y += `      - {name: TT-2, kind: temperature, unit: "°C", area: holding, address: 1, range: {min: 0, max: 100}}
`
	}
	cfg, err := config.Parse("reload-test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestReloadUnderLoad reloads a polling gateway with one device changed
// and one unchanged: the unchanged device keeps its loop (the same object,
// its poll counter running on), its samples have no gap, and its active
// alarm is neither cleared nor raised again; the changed device gets its
// new tag; the platform receives a config_changed event with both hashes.
// A reload that needs a restart is refused and the gateway runs on.
func TestReloadUnderLoad(t *testing.T) {
	b := testkit.StartBroker(t)
	plat := newPlatform(t, b)
	devA, devB := modbustest.NewServer(t), modbustest.NewServer(t)
	devA.SetHolding(0, 90) // LT-1 above its hh limit: an active alarm
	devB.SetHolding(0, 20, 21)

	dir := t.TempDir()
	cfg1 := reloadConfig(t, dir, b.URL(), devA.Addr, devB.Addr, false, 100)
	cfg2 := reloadConfig(t, dir, b.URL(), devA.Addr, devB.Addr, true, 100)
	cfg3 := reloadConfig(t, dir, b.URL(), devA.Addr, devB.Addr, true, 50) // uplink changed

	g, err := New(cfg1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	testkit.RunInBackground(t, "gateway", g, 15*time.Second)
	ctx := t.Context()

	waitFor(t, 15*time.Second, "LT-1 hh alarm at the platform", func() bool { return len(plat.eventsOf("alarm_raised")) == 1 })
	waitFor(t, 10*time.Second, "TT-1 samples", func() bool { return len(plat.samples("TT-1")) > 5 })
	_, loops, _ := g.current()
	loopA := loops[0]
	pollsBefore := loopA.Stats().Polls

	res, err := g.Reload(ctx, cfg2)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !slices.Equal(res.Unchanged, []string{"plc-a"}) || !slices.Equal(res.Changed, []string{"plc-b"}) || len(res.Added)+len(res.Removed) != 0 {
		t.Errorf("Reload = %+v, want plc-a unchanged and plc-b changed", res)
	}
	_, loops, _ = g.current()
	if loops[0] != loopA {
		t.Error("the unchanged device's loop was replaced")
	}
	if st := loopA.Stats(); st.Polls < pollsBefore || st.State == "stopped" {
		t.Errorf("the unchanged device's loop: %+v (polls before the reload %d)", st, pollsBefore)
	}
	if loops[1] == nil || loops[1].Stats().Device != "plc-b" {
		t.Errorf("plc-b has no loop after the reload")
	}
	if g.Config() != cfg2 {
		t.Error("Config() is not the new config")
	}

	waitFor(t, 10*time.Second, "config_changed at the platform", func() bool { return len(plat.eventsOf("config_changed")) == 1 })
	ev := plat.eventsOf("config_changed")[0]
	if ev["old_config_hash"] != shortHash16(cfg1.Hash()) || ev["config_hash"] != shortHash16(cfg2.Hash()) {
		t.Errorf("config_changed carries %v -> %v, want %s -> %s", ev["old_config_hash"], ev["config_hash"], shortHash16(cfg1.Hash()), shortHash16(cfg2.Hash()))
	}
	waitFor(t, 10*time.Second, "TT-2 samples after the reload", func() bool { return len(plat.samples("TT-2")) > 5 })

	// A change only a restart can apply is refused as a whole.
	if _, err := g.Reload(ctx, cfg3); !errors.Is(err, ErrRestartNeeded) || !strings.Contains(err.Error(), "uplink") {
		t.Errorf("Reload with a changed uplink: %v, want ErrRestartNeeded naming the uplink", err)
	}
	if g.Config() != cfg2 {
		t.Error("a refused reload replaced the config")
	}
	// The same config again changes nothing.
	if res, err := g.Reload(ctx, cfg2); err != nil || !res.Same() {
		t.Errorf("Reload with the running config: %+v, %v", res, err)
	}

	n := len(plat.samples("LT-1"))
	waitFor(t, 10*time.Second, "LT-1 polling on after the refusal", func() bool { return len(plat.samples("LT-1")) > n+10 })

	// No gap in the unchanged device's data: at 50 ms, anything beyond a
	// second (generous for a loaded machine) would be a restart.
	times := plat.samples("LT-1")
	worst := largestGap(times)
	if worst > time.Second {
		t.Errorf("LT-1 samples have a gap of %v", worst)
	}
	if n := len(plat.eventsOf("alarm_raised")); n != 1 {
		t.Errorf("%d alarm_raised events, want 1: the reload must keep LT-1's alarm", n)
	}
	if n := len(plat.eventsOf("alarm_cleared")); n != 0 {
		t.Errorf("%d alarm_cleared events, want none", n)
	}
	// The changed device restarts: its unchanged tag misses about the
	// polls of the restart, no more.
	gapB := largestGap(plat.samples("TT-1"))
	if gapB > 2*time.Second {
		t.Errorf("TT-1 samples have a gap of %v across the restart of plc-b", gapB)
	}
	t.Logf("LT-1: %d samples, largest gap %v; plc-a polls %d; TT-1 (device restarted) largest gap %v", len(times), worst, loopA.Stats().Polls, gapB)
}

func largestGap(times []time.Time) time.Duration {
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var worst time.Duration
	for i := 1; i < len(times); i++ {
		worst = max(worst, times[i].Sub(times[i-1]))
	}
	return worst
}

// interlockConfig is a gateway with device plc (LT-1, the writable coil
// XV-1) and interlock IL-1 (LT-1 >= limit closes XV-1).
func interlockConfig(t *testing.T, dataDir, brokerURL, addr string, limit float64, description string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`gateway: {id: gw-il, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [%q]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: %s
    interval: 50ms
    timeout: 40ms
    tags:
      - {name: LT-1, description: %q, kind: level, unit: m, area: holding, address: 0, range: {min: 0, max: 100}}
      - {name: XV-1, kind: digital, area: coil, address: 0, writable: true}
interlocks:
  - name: IL-1
    condition: LT-1 >= %g
    bad_quality: hold
    actions:
      - {tag: XV-1, value: 0}
`, dataDir, brokerURL, addr, description, limit)
	cfg, err := config.Parse("interlock-test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestReloadKeepsTrippedInterlock: a reload never resets a trip. One that
// would change the tripped interlock is refused; one that leaves it alone
// (here the device changes) is applied and the interlock stays tripped,
// without writing its output again.
func TestReloadKeepsTrippedInterlock(t *testing.T) {
	b := testkit.StartBroker(t)
	plat := newPlatform(t, b)
	dev := modbustest.NewServer(t)
	dev.SetHolding(0, 90)
	dev.SetCoils(0, true)
	dir := t.TempDir()
	cfg1 := interlockConfig(t, dir, b.URL(), dev.Addr, 80, "tank")
	g, err := New(cfg1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	testkit.RunInBackground(t, "gateway", g, 15*time.Second)
	ctx := t.Context()
	waitFor(t, 15*time.Second, "IL-1 tripped and XV-1 written", func() bool {
		on, _ := dev.Coil(0)
		return len(plat.eventsOf("interlock_action")) == 1 && !on
	})

	_, err = g.Reload(ctx, interlockConfig(t, dir, b.URL(), dev.Addr, 85, "tank"))
	if err == nil || !strings.Contains(err.Error(), "IL-1 is tripped") {
		t.Fatalf("Reload changing the tripped interlock: %v, want a refusal naming IL-1", err)
	}
	if g.Config() != cfg1 {
		t.Fatal("the refused config is in effect")
	}

	cfg2 := interlockConfig(t, dir, b.URL(), dev.Addr, 80, "tank T-1") // the device changes, IL-1 does not
	res, err := g.Reload(ctx, cfg2)
	if err != nil || !slices.Equal(res.Changed, []string{"plc"}) {
		t.Fatalf("Reload = %+v, %v", res, err)
	}
	waitFor(t, 10*time.Second, "config_changed", func() bool { return len(plat.eventsOf("config_changed")) == 1 })
	// The restarted device polls again; the interlock sees LT-1 anew.
	n := len(plat.samples("LT-1"))
	waitFor(t, 10*time.Second, "LT-1 after the reload", func() bool { return len(plat.samples("LT-1")) > n+5 })
	if st := g.Interlocks(); len(st) != 1 || !st[0].Tripped {
		t.Errorf("IL-1 after the reload: %+v, want still tripped", st)
	}
	if n := len(plat.eventsOf("interlock_tripped")); n != 1 {
		t.Errorf("%d interlock_tripped events, want 1: the reload must not trip it again", n)
	}
	// An operator reset after the reload works on the carried state: the
	// condition still holds, so it is refused.
	if err := g.ResetInterlock(ctx, "IL-1", "op"); err == nil {
		t.Error("reset accepted while LT-1 is still above the limit")
	}
}

// TestRestartNeeded lists what a reload refuses.
func TestRestartNeeded(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{
			Gateway: config.Gateway{ID: "gw", DataDir: "/d"},
			Uplink:  config.Uplink{Brokers: []string{"tcp://a:1883"}},
			Devices: []config.Device{
				{Name: "rtu-1", Protocol: config.ProtocolModbusRTU, Serial: &config.Serial{Port: "/dev/ttyS1", Baud: 9600},
					Tags: []config.Tag{{Name: "XV-1", Writable: true}}},
				{Name: "tcp-1", Protocol: config.ProtocolModbusTCP, Address: "10.0.0.1:502", Tags: []config.Tag{{Name: "LT-1"}}},
			},
		}
	}
	cases := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" = allowed
	}{
		{"device changed", func(c *config.Config) { c.Devices[1].Address = "10.0.0.2:502" }, ""},
		{"device removed", func(c *config.Config) {
			c.Devices = c.Devices[1:2]
			c.Devices[0].Tags = append(c.Devices[0].Tags, config.Tag{Name: "XV-1", Writable: true})
		}, ""},
		{"data dir", func(c *config.Config) { c.Gateway.DataDir = "/e" }, "section gateway"},
		{"buffer", func(c *config.Config) { c.Buffer.MaxBytes = 1 << 20 }, "section buffer"},
		{"broker", func(c *config.Config) { c.Uplink.Brokers = []string{"tcp://b:1883"} }, "section uplink"},
		{"web", func(c *config.Config) { c.Web.Listen = "127.0.0.1:9090" }, "section web"},
		{"history", func(c *config.Config) { c.History.MaxBytes = 123 << 20 }, "section history"},
		{"alarm outputs", func(c *config.Config) { c.AlarmOutputs = append(c.AlarmOutputs, config.AlarmOutput{Tag: "XA-9"}) }, "section alarm_outputs"},
		{"baud", func(c *config.Config) { c.Devices[0].Serial = &config.Serial{Port: "/dev/ttyS1", Baud: 19200} }, "line settings"},
		{"writable", func(c *config.Config) { c.Devices[1].Tags[0].Writable = true }, "writable tags"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, cfg := base(), base()
			c.change(cfg)
			lines := map[string]*config.Serial{}
			noteLines(lines, old)
			why := strings.Join(restartNeeded(old, cfg, lines), "; ")
			if (c.want == "") != (why == "") || !strings.Contains(why, c.want) {
				t.Errorf("restartNeeded = %q, want %q", why, c.want)
			}
		})
	}
	// A line that went away and comes back keeps its first settings.
	old := base()
	lines := map[string]*config.Serial{}
	noteLines(lines, old)
	gone := base()
	gone.Devices = gone.Devices[1:]
	gone.Devices[0].Tags = append(gone.Devices[0].Tags, config.Tag{Name: "XV-1", Writable: true})
	back := base()
	back.Devices[0].Serial = &config.Serial{Port: "/dev/ttyS1", Baud: 19200}
	if why := restartNeeded(gone, back, lines); len(why) == 0 {
		t.Error("a line reopened with other settings was allowed")
	}
}
