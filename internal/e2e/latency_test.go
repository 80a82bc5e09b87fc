package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// TestAlarmLatency measures the time from a gas reading crossing its first
// alarm level in the (simulated) detector to the alarm event arriving at a
// subscriber of the platform's broker, over HAZGATE_ALARMS raise/clear
// cycles (50 by default; run it with 500 or more for the figures in
// docs/PERFORMANCE.md), and fails when the slowest alarm takes longer
// than a poll interval plus one second.
func TestAlarmLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("50 alarm cycles, about 15 s")
	}
	alarms := envCount(t, "HAZGATE_ALARMS", 50)
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: false})
	b := testkit.StartBroker(t)

	const interval = 100 * time.Millisecond
	cfg := loadConfig(t, []byte(fmt.Sprintf(`gateway: {id: lat-gw, enterprise_code: TEST01, data_dir: %q}
uplink: {brokers: [%q]}
devices:
%s`, t.TempDir(), b.URL(), gasDetectorYAML(plant.Addr()))))

	probe := newAlarmProbe(plant, interval, nil)
	if err := b.Subscribe("hazgate/lat-gw/event", probe.handle); err != nil {
		t.Fatal(err)
	}
	runGateway(t, cfg)
	if err := probe.settle(); err != nil {
		t.Fatal(err)
	}
	var change, own []time.Duration
	for range alarms {
		a, err := probe.cycle()
		if err != nil {
			t.Fatal(err)
		}
		change = append(change, a.change)
		own = append(own, a.own)
	}
	t.Logf("alarm latency over %d alarms at a %s poll interval (nearest-rank percentiles; load average %s)", alarms, interval, loadAverage())
	t.Logf("  detector value change -> event at the subscriber: %s", latencySummary(change))
	t.Logf("  the gateway's own part, acquisition -> rules -> fsync -> publish -> subscriber: %s", latencySummary(own))
	if slowest := slices.Max(change); slowest > interval+time.Second {
		t.Errorf("slowest alarm took %s from the detector to the subscriber, want under %s", slowest, interval+time.Second)
	}
}

// TestAlarmLatencyDuringBacklog measures the same latency through the
// whole gateway (the built binary) while a backlog drains: the broker is
// away until HAZGATE_BACKLOG_RECORDS data records (200,000 by default;
// 1,000,000 for the figures in docs/PERFORMANCE.md) wait in the buffer,
// then it returns and, while the backlog drains at full speed, the gas
// detector crosses its alarm level again and again. Rounds of outage and
// drain repeat until HAZGATE_ALARMS alarms (10 by default) were raised
// during a drain. An alarm must overtake the data queued before it: one
// acquired while the drain still had more than two seconds to go must
// not arrive after the drain's end. The slowest alarm must arrive within
// a poll interval plus two seconds.
func TestAlarmLatencyDuringBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and drains backlogs of 200k records (about a minute)")
	}
	target := envCount(t, "HAZGATE_BACKLOG_RECORDS", 200_000)
	alarms := envCount(t, "HAZGATE_ALARMS", 10)
	const (
		interval = 100 * time.Millisecond // the gas detector's, in outageConfigYAML
		// An event waits at most for the window in flight (64 messages
		// of 500 samples in outageConfigYAML). A drain that ends at all
		// acknowledges faster than the 25k samples/s acquired, so a
		// window takes under 1.3 s: an alarm acquired more than this
		// before the drain's end, arriving after it, waited for the
		// backlog.
		behind = 2 * time.Second
	)
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: false})
	b := testkit.StartBroker(t)
	addr := b.Addr()
	webAddr := testkit.FreeAddr(t)
	y := outageConfigYAML(filepath.Join(dir, "data"), b.URL(), plant.Addr(), fmt.Sprintf("web: {listen: %q}\n", webAddr))
	loadConfig(t, []byte(y)) // fails the test early on a config mistake
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(y))
	metrics := "http://" + webAddr + "/metrics"
	metric := func(name string) uint64 { return uint64(scrapeMetric(t, metrics, name+`{stream="data"}`)) }

	front := &dataFront{}
	probe := newAlarmProbe(plant, interval, front)
	attach := func(br *broker.Broker) {
		t.Helper()
		if err := br.Subscribe("hazgate/outage-gw/event", probe.handle); err != nil {
			t.Fatal(err)
		}
		if err := br.Subscribe("hazgate/outage-gw/data", front.handle); err != nil {
			t.Fatal(err)
		}
	}
	attach(b)

	var logs testkit.SyncBuffer
	testkit.LogOnFailure(t, "gateway output", &logs)
	cmd := startGateway(t, bin, cfgPath, &logs, "--log-level", "warn")
	defer stopGateway(t, cmd)
	waitFor(t, 15*time.Second, "first data", func() bool { seq, _ := front.now(); return seq > 0 })
	if err := probe.settle(); err != nil {
		t.Fatal(err)
	}

	var change, own, lead []time.Duration
	for round := 1; len(change) < alarms; round++ {
		b.Close()
		before, _ := front.now()
		accumulate := time.Duration(target/25_000+30) * time.Second // ~25k samples/s, generously
		waitFor(t, accumulate, fmt.Sprintf("a backlog of %d records", target), func() bool {
			return metric("hazgate_buffer_records") >= uint64(target)
		})
		front.setMark(metric("hazgate_buffer_appended_records_total")) // the backlog's last record
		b = testkit.StartBrokerOn(t, addr)
		attach(b)
		returned := time.Now()
		// Alarms raised before the gateway is back would measure its
		// reconnect backoff, not the drain.
		waitFor(t, 30*time.Second, "the gateway back on the broker", func() bool { seq, _ := front.now(); return seq > before })
		back := time.Now()
		var measured []alarmSample
		for {
			if _, done := front.reached(); done {
				break
			}
			a, err := probe.cycle()
			if err != nil {
				t.Fatal(err)
			}
			measured = append(measured, a)
		}
		drained, _ := front.reached()
		if len(measured) == 0 {
			t.Fatalf("the backlog drained before an alarm could be raised: raise HAZGATE_BACKLOG_RECORDS")
		}
		for _, a := range measured {
			change = append(change, a.change)
			own = append(own, a.own)
			lead = append(lead, a.acquired.Sub(a.dataNewest))
			if drained.Sub(a.acquired) > behind && a.arrived.After(drained) {
				t.Errorf("round %d: an alarm acquired %s before the drain's end arrived %s after it: it waited behind the backlog",
					round, drained.Sub(a.acquired).Round(time.Millisecond), a.arrived.Sub(drained).Round(time.Millisecond))
			}
		}
		// So far, so that a long run cut short still says something.
		t.Logf("round %d: %d alarms while %d records drained in %s (%s of it until the gateway was back); so far %s",
			round, len(measured), target, drained.Sub(returned).Round(time.Millisecond), back.Sub(returned).Round(time.Millisecond), latencySummary(change))
	}
	t.Logf("alarm latency over %d alarms while backlogs of %d records drained, %s poll interval (nearest-rank percentiles; load average %s)", len(change), target, interval, loadAverage())
	t.Logf("  detector value change -> event at the subscriber: %s", latencySummary(change))
	t.Logf("  the gateway's own part, acquisition -> rules -> fsync -> publish -> subscriber: %s", latencySummary(own))
	t.Logf("  how far the alarm overtook the data stream (its acquisition - the newest data delivered before it): %s", latencySummary(lead))
	if slowest := slices.Max(change); slowest > interval+2*time.Second {
		t.Errorf("slowest alarm took %s from the detector to the subscriber during a drain, want under %s", slowest, interval+2*time.Second)
	}
}

// dataFront follows the data stream at a subscriber: the highest seq and
// the newest acquisition time delivered, read from the message's header
// and its last sample without decoding the samples, so that following a
// drain of 100k samples/s takes little of the CPU the gateway needs.
type dataFront struct {
	mu     sync.Mutex
	seq    uint64
	newest time.Time
	mark   uint64    // a seq whose arrival markAt records (the backlog's last)
	markAt time.Time // zero until then
}

func (f *dataFront) handle(m broker.Message) {
	at := time.Now()
	_, last, ok := seqSpan(m.Payload)
	if !ok {
		return
	}
	// Samples are in seq order: the last "time" is the newest.
	var newest time.Time
	if i := bytes.LastIndex(m.Payload, []byte(`"time":"`)); i >= 0 {
		rest := m.Payload[i+len(`"time":"`):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			newest, _ = time.Parse(time.RFC3339Nano, string(rest[:j]))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq = max(f.seq, last)
	if newest.After(f.newest) {
		f.newest = newest
	}
	if f.mark > 0 && f.markAt.IsZero() && f.seq >= f.mark {
		f.markAt = at
	}
}

// now is the highest seq and the newest acquisition time delivered.
func (f *dataFront) now() (uint64, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq, f.newest
}

// setMark starts watching for seq to be delivered.
func (f *dataFront) setMark(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mark, f.markAt = seq, time.Time{}
}

// reached says when the seq of setMark was delivered, if it was.
func (f *dataFront) reached() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.markAt, !f.markAt.IsZero()
}

// gasDetectorYAML is the device entry of the simulated gas detector
// GT-201 at plantAddr, polled every 100 ms, its first alarm level (h) at
// 20 %LEL.
func gasDetectorYAML(plantAddr string) string {
	return fmt.Sprintf(`  - name: gas
    protocol: modbus-tcp
    address: %s
    interval: 100ms
    timeout: 80ms
    tags:
      - {name: GT-201, kind: gas, unit: "%%LEL", area: input, address: 0, scale: {raw_min: 0, raw_max: 1000},
         range: {min: 0, max: 100}, alarms: {h: 20, hh: 40, deadband: 2}}
`, plantAddr)
}

// alarmProbe drives the simulated gas detector GT-201 across its first
// alarm level (h at 20 %LEL) and back, and times each raise at the
// subscriber whose handler it is.
type alarmProbe struct {
	plant    *sim.Plant
	interval time.Duration     // the detector's poll interval
	data     *dataFront        // the data stream at the same subscriber, or nil
	arrived  chan alarmArrival // GT-201 h events in arrival order

	mu      sync.Mutex
	lastSeq uint64 // event seqs at or below it are resends after a reconnect
}

type alarmArrival struct {
	kind     string
	acquired time.Time // of the sample that raised or cleared the alarm
	at       time.Time // at the subscriber
	data     time.Time // newest data acquisition time delivered by then
}

// alarmSample is one raise as measured.
type alarmSample struct {
	change     time.Duration // detector value change -> event at the subscriber
	own        time.Duration // acquisition of the sample -> event at the subscriber
	acquired   time.Time     // of the sample that raised it
	arrived    time.Time     // at the subscriber
	dataNewest time.Time     // newest data acquisition time delivered by then
}

func newAlarmProbe(plant *sim.Plant, interval time.Duration, data *dataFront) *alarmProbe {
	return &alarmProbe{plant: plant, interval: interval, data: data, arrived: make(chan alarmArrival, 64)}
}

// handle is the subscriber of the event topic.
func (p *alarmProbe) handle(m broker.Message) {
	at := time.Now()
	var e struct {
		Seq   uint64    `json:"seq"`
		Kind  string    `json:"kind"`
		Tag   string    `json:"tag"`
		Level string    `json:"level"`
		Time  time.Time `json:"time"`
	}
	if json.Unmarshal(m.Payload, &e) != nil || e.Tag != sim.GT201 || e.Level != "h" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Seq <= p.lastSeq {
		return // delivered before the broker went away, sent again after
	}
	p.lastSeq = e.Seq
	a := alarmArrival{kind: e.Kind, acquired: e.Time, at: at}
	if p.data != nil {
		_, a.data = p.data.now()
	}
	p.arrived <- a
}

// settle puts the detector at 0 and gives the gateway three polls to see
// the clean value, so that the first raise is a crossing.
func (p *alarmProbe) settle() error {
	if err := p.plant.Set(sim.GT201, 0); err != nil {
		return fmt.Errorf("settle detector: %w", err)
	}
	time.Sleep(3 * p.interval)
	return nil
}

// cycle raises the alarm and clears it again. The value changes at a
// random moment of the poll interval, as a real gas cloud would: right
// after the previous event the poller's phase would otherwise make every
// alarm wait one full interval.
func (p *alarmProbe) cycle() (alarmSample, error) {
	time.Sleep(rand.N(p.interval))
	changed := time.Now()
	if err := p.plant.Set(sim.GT201, 30); err != nil {
		return alarmSample{}, fmt.Errorf("raise: %w", err)
	}
	raised, err := p.await("alarm_raised")
	if err != nil {
		return alarmSample{}, err
	}
	if err := p.plant.Set(sim.GT201, 0); err != nil {
		return alarmSample{}, fmt.Errorf("clear: %w", err)
	}
	if _, err := p.await("alarm_cleared"); err != nil {
		return alarmSample{}, err
	}
	return alarmSample{change: raised.at.Sub(changed), own: raised.at.Sub(raised.acquired),
		acquired: raised.acquired, arrived: raised.at, dataNewest: raised.data}, nil
}

func (p *alarmProbe) await(kind string) (alarmArrival, error) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case a := <-p.arrived:
			if a.kind == kind {
				return a, nil
			}
		case <-timeout:
			return alarmArrival{}, fmt.Errorf("no GT-201 %s event within 20 s", kind)
		}
	}
}

// percentile is the nearest-rank percentile (0 < q <= 100) of sorted: the
// smallest value with at least q % of the values at or below it. It is
// always one of the measured values; with n values p99 is the max when
// n < 100.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencySummary is "p50 …, p90 …, p99 …, max …" of d.
func latencySummary(d []time.Duration) string {
	s := slices.Sorted(slices.Values(d))
	r := func(v time.Duration) time.Duration { return v.Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)",
		r(percentile(s, 50)), r(percentile(s, 90)), r(percentile(s, 99)), r(s[len(s)-1]), len(s))
}

// envCount is the positive integer in the environment variable name, or def.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive count", name, v)
	}
	return n
}

// loadAverage is the 1, 5 and 15 minute load average, for the log next to
// figures that a loaded machine makes noisy.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		sorted []time.Duration
		q      float64
		want   int
	}{
		{ms(7), 50, 7},
		{ms(7), 99, 7},
		{ms(1, 2), 50, 1}, // rank ceil(1.0) = 1: no interpolation
		{ms(1, 2, 3, 4), 50, 2},
		{ms(1, 2, 3, 4), 90, 4},
		{ms(hundred...), 50, 50},
		{ms(hundred...), 90, 90},
		{ms(hundred...), 99, 99}, // below the max from 100 values on
		{ms(hundred...), 100, 100},
	} {
		if got := percentile(c.sorted, c.q); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("p%g of %d values = %s, want %dms", c.q, len(c.sorted), got, c.want)
		}
	}
}
