package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
)

// TestAlarmLatency measures the time from a gas reading crossing its first
// alarm level in the (simulated) detector to the alarm event arriving at
// the platform's broker, over repeated raise/clear cycles, and fails when
// the slowest alarm takes longer than a poll interval plus one second.
func TestAlarmLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("20 alarm cycles, about 10 s")
	}
	plant := sim.NewPlant(sim.PlantOptions{Script: false})
	if err := plant.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer plant.Close()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	const interval = 100 * time.Millisecond
	cfg := loadConfig(t, []byte(fmt.Sprintf(`gateway: {id: lat-gw, enterprise_code: TEST01, data_dir: %q}
uplink: {brokers: [%q]}
devices:
  - name: gas
    protocol: modbus-tcp
    address: %s
    interval: 100ms
    timeout: 80ms
    tags:
      - {name: GT-201, kind: gas, unit: "%%LEL", area: input, address: 0, scale: {raw_min: 0, raw_max: 1000},
         range: {min: 0, max: 100}, alarms: {h: 20, hh: 40, deadband: 2}}
`, t.TempDir(), b.URL(), plant.Addr())))

	arrived := make(chan string, 16)
	inside := make(chan time.Duration, 64) // acquisition of the sample -> broker
	if err := b.Subscribe("hazgate/lat-gw/event", func(m broker.Message) {
		var e struct {
			Kind, Tag, Level string
			Time             time.Time
		}
		if json.Unmarshal(m.Payload, &e) == nil && e.Tag == "GT-201" && e.Level == "h" {
			if e.Kind == "alarm_raised" {
				inside <- time.Since(e.Time)
			}
			arrived <- e.Kind
		}
	}); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	await := func(kind string) (time.Duration, error) {
		start := time.Now()
		for {
			select {
			case k := <-arrived:
				if k == kind {
					return time.Since(start), nil
				}
			case <-time.After(10 * time.Second):
				return 0, fmt.Errorf("no %s within 10 s", kind)
			}
		}
	}
	if err := plant.Set(sim.GT201, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * interval) // the gateway has seen the clean value
	var lat []time.Duration
	for range 20 {
		if err := plant.Set(sim.GT201, 30); err != nil {
			t.Fatal(err)
		}
		d, err := await("alarm_raised")
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, d)
		if err := plant.Set(sim.GT201, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := await("alarm_cleared"); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)-1]
	t.Logf("alarm latency detector -> broker over %d alarms at a %s poll interval: p50 %s, max %s", len(lat), interval, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	var own []time.Duration
	for len(own) < len(lat) {
		own = append(own, <-inside) // one per raise, already sent
	}
	slices.Sort(own)
	t.Logf("the gateway's own part, acquisition -> rules -> fsync -> publish -> broker: p50 %s, max %s", own[len(own)/2].Round(100*time.Microsecond), own[len(own)-1].Round(100*time.Microsecond))
	if p99 > interval+time.Second {
		t.Errorf("slowest alarm took %s from the detector to the broker, want under %s", p99, interval+time.Second)
	}
}
