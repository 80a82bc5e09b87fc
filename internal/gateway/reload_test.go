package gateway

import (
	"context"
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
)

// platform records what the broker delivers, checking every message
// against the contract's schemas.
type platform struct {
	t       *testing.T
	schemas *schema.Set

	mu      sync.Mutex
	times   map[string][]time.Time // tag -> acquisition times of its good samples
	bad     map[string][]time.Time // tag -> acquisition times of its other samples
	events  []map[string]any
	invalid int
}

func newPlatform(t *testing.T, b *broker.Broker) *platform {
	t.Helper()
	s, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, schemas: s, times: map[string][]time.Time{}, bad: map[string][]time.Time{}}
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
				p.bad[s.Tag] = append(p.bad[s.Tag], at)
				continue
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
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitFor(t, 15*time.Second, "LT-1 hh alarm at the platform", func() bool { return len(plat.eventsOf("alarm_raised")) == 1 })
	waitFor(t, 10*time.Second, "TT-1 samples", func() bool { return len(plat.samples("TT-1")) > 5 })
	_, loops, _ := g.current()
	loopA := loops[0]
	pollsBefore := loopA.Stats().Polls
	reloadAt := time.Now()

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
	plat.mu.Lock()
	for _, at := range plat.bad["LT-1"] {
		if at.After(reloadAt) {
			t.Errorf("a bad LT-1 sample at %s; the unchanged device must not notice the reload", at.Format(time.StampMilli))
		}
	}
	plat.mu.Unlock()
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
