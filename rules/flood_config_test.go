package rules

import (
	"fmt"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestFloodLimitPerDevice: each device's alarm_flood_limit applies to that
// device alone: a tight limit on one does not summarise another, 0 never
// summarises, and a device without the key gets DefaultFloodPerMinute.
func TestFloodLimitPerDevice(t *testing.T) {
	three, off := 3, 0
	devices := []struct {
		name  string
		limit *int
		flood int // the raise (1-based) that starts a flood; 0: none
	}{
		{"TIGHT", &three, 4},
		{"OFF", &off, 0},
		{"DEFAULT", nil, DefaultFloodPerMinute + 1},
	}
	const n = 20 // different alarms per device, one second apart
	cfg := &config.Config{}
	for _, d := range devices {
		dev := config.Device{Name: d.name, CommLossAfter: dur(time.Hour), AlarmFloodLimit: d.limit}
		for i := range n {
			dev.Tags = append(dev.Tags, config.Tag{Name: fmt.Sprint(d.name, "-LT-", i), Kind: config.KindLevel,
				Alarms: &config.Alarms{H: f(15), HH: f(18)}})
		}
		cfg.Devices = append(cfg.Devices, dev)
	}
	e := New(cfg)
	// The devices' raises interleave, so a shared counter would flood all
	// three at once.
	var all []model.Event
	for i := range n {
		for _, d := range devices {
			all = e.Process([]model.Sample{{Tag: fmt.Sprint(d.name, "-LT-", i), Device: d.name, Value: 16,
				Time: t0.Add(time.Duration(i) * time.Second)}}, all)
		}
	}
	for _, d := range devices {
		raised, floodAt := 0, 0
		for _, ev := range all {
			if ev.Device != d.name {
				continue
			}
			switch ev.Kind {
			case model.AlarmRaised:
				raised++
			case model.AlarmFlood:
				if floodAt != 0 {
					t.Errorf("%s: a second flood start: %s", d.name, ev.Message)
				}
				floodAt = raised + 1 // the raise that started it is held, not passed
			}
		}
		if floodAt != d.flood {
			t.Errorf("%s (limit %v): flood began at raise %d, want %d\n%s", d.name, d.limit, floodAt, d.flood, describe(all))
		}
		wantPassed := n
		if d.flood != 0 {
			wantPassed = d.flood - 1
		}
		if raised != wantPassed {
			t.Errorf("%s: %d raises passed one by one, want %d", d.name, raised, wantPassed)
		}
	}
}

// TestFloodLimitFromConfigFile: the key reaches the engine through the
// parser, so a typo in the wiring cannot leave every device at the default.
func TestFloodLimitFromConfigFile(t *testing.T) {
	src := `gateway: {id: gw-1, enterprise_code: E1}
uplink: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    alarm_flood_limit: 2
    tags:
      - {name: LT-1, kind: level, area: holding, address: 0, range: {min: 0, max: 20}, alarms: {h: 15}}
      - {name: LT-2, kind: level, area: holding, address: 1, range: {min: 0, max: 20}, alarms: {h: 15}}
      - {name: LT-3, kind: level, area: holding, address: 2, range: {min: 0, max: 20}, alarms: {h: 15}}
`
	cfg, err := config.Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg)
	var all []model.Event
	for i := range 3 {
		all = e.Process([]model.Sample{{Tag: fmt.Sprint("LT-", i+1), Device: "plc", Value: 16,
			Time: t0.Add(time.Duration(i) * time.Second)}}, all)
	}
	if len(all) != 3 || all[2].Kind != model.AlarmFlood {
		t.Fatalf("with alarm_flood_limit 2 the third raise should start a flood: %s", describe(all))
	}
}
