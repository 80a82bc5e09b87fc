package config

import (
	"strings"
	"testing"
)

// plantWith is a valid file whose tags list is tags (indented as list
// items under devices[0].tags) followed by top-level extra.
func plantWith(tags, extra string) string {
	return `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
` + tags + extra
}

const (
	lt101 = `      - {name: LT-101, kind: level, unit: m, area: holding, address: 0, type: float32, range: {min: 0, max: 20}}
`
	lshh = `      - {name: LSHH-101, kind: digital, area: discrete, address: 0}
`
	xv = `      - {name: XV-101, kind: digital, area: coil, address: 0, writable: true}
`
	xvRO = `      - {name: XV-102, kind: digital, area: coil, address: 1}
`
)

func TestGasPresets(t *testing.T) {
	gas := func(unit, alarms string) string {
		return plantWith(`      - name: GT-1
        kind: gas
        unit: "`+unit+`"
        area: holding
        address: 0
        range: {min: 0, max: 100}
        alarms: `+alarms+"\n", "")
	}
	ok := []struct {
		name, unit, alarms string
		h, hh              float64
	}{
		{"combustible fills 25/50", "%LEL", "{gas: {type: combustible}}", 25, 50},
		{"combustible keeps stricter", "%LEL", "{h: 20, gas: {type: combustible}}", 20, 50},
		{"toxic OEL 10 ppm", "ppm", "{gas: {type: toxic, oel: 10}}", 10, 20},
		{"toxic IDLH 100 ppm", "ppm", "{gas: {type: toxic, idlh: 100}}", 5, 10},
		{"toxic OEL beats IDLH", "ppm", "{gas: {type: toxic, oel: 1, idlh: 100}}", 1, 2},
		{"toxic stricter kept", "ppm", "{h: 0.5, hh: 1.5, gas: {type: toxic, oel: 1}}", 0.5, 1.5},
	}
	for _, c := range ok {
		cfg, err := Parse("plant.yaml", []byte(gas(c.unit, c.alarms)))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		a := cfg.Devices[0].Tags[0].Alarms
		if a.H == nil || a.HH == nil || *a.H != c.h || *a.HH != c.hh {
			t.Fatalf("%s: h %v hh %v, want %v %v", c.name, a.H, a.HH, c.h, c.hh)
		}
	}
	bad := []struct{ name, unit, alarms, want string }{
		{"combustible looser first", "%LEL", "{h: 30, gas: {type: combustible}}",
			"plant.yaml:17:21: devices[0].tags[0].alarms.h: first alarm 30 %LEL is above 25 %LEL (GB/T 50493-2019 5.5.2: 一级报警 <= 25%LEL)"},
		{"combustible looser second", "%LEL", "{hh: 60, gas: {type: combustible}}",
			"plant.yaml:17:22: devices[0].tags[0].alarms.hh: second alarm 60 %LEL is above 50 %LEL (GB/T 50493-2019 5.5.2: 二级报警 <= 50%LEL)"},
		{"combustible in ppm", "ppm", "{gas: {type: combustible}}",
			`plant.yaml:17:30: devices[0].tags[0].alarms.gas.type: combustible gas is measured in %LEL (set unit: %LEL; this tag's unit is "ppm")`},
		{"toxic looser first", "ppm", "{h: 12, gas: {type: toxic, oel: 10}}",
			"plant.yaml:17:21: devices[0].tags[0].alarms.h: first alarm 12 is above 10 ppm (GB/T 50493-2019 5.5.2: 有毒气体一级报警 <= 100%OEL)"},
		{"toxic looser second by IDLH", "ppm", "{hh: 11, gas: {type: toxic, idlh: 100}}",
			"plant.yaml:17:22: devices[0].tags[0].alarms.hh: second alarm 11 is above 10 ppm (GB/T 50493-2019 5.5.2: 有毒气体二级报警 <= 10%IDLH)"},
		{"toxic without limits", "ppm", "{gas: {type: toxic}}",
			"plant.yaml:17:23: devices[0].tags[0].alarms.gas.oel: missing (the occupational exposure limit (or idlh when the detector cannot measure down to the OEL), in ppm)"},
		{"unknown type", "ppm", "{gas: {type: explosive}}",
			`plant.yaml:17:30: devices[0].tags[0].alarms.gas.type: "explosive" is not a gas type (combustible or toxic)`},
	}
	for _, c := range bad {
		got := strings.Join(problems(t, gas(c.unit, c.alarms)), "\n")
		if got != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, c.want)
		}
	}
	got := strings.Join(problems(t, plantWith(`      - {name: LT-1, kind: level, area: holding, address: 0, range: {min: 0, max: 20}, alarms: {gas: {type: combustible}}}
`, "")), "\n")
	if !strings.Contains(got, "alarms.gas: applies to kind: gas (this tag is level)") {
		t.Errorf("gas on a level tag: %s", got)
	}
}

func TestAlarmExtras(t *testing.T) {
	src := plantWith(`      - name: LT-101
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
        alarms:
          priority: {hh: purple}
          rate_of_change: {limit: 0}
          deviation: {tag: LT-999, limit: 0.3}
          frozen: {tolerance: -1}
      - {name: LT-102, kind: level, area: holding, address: 1, range: {min: 0, max: 20}, alarms: {deviation: {tag: PT-1, limit: 1}}}
      - {name: PT-1, kind: pressure, area: holding, address: 2, range: {min: 0, max: 20}}
`, "")
	want := []string{
		`plant.yaml:17:26: devices[0].tags[0].alarms.priority.hh: "purple" is not a colour (one of red, orange, yellow, blue)`,
		`plant.yaml:18:35: devices[0].tags[0].alarms.rate_of_change.limit: 0 must be more than 0 (engineering units per minute)`,
		`plant.yaml:19:28: devices[0].tags[0].alarms.deviation.tag: "LT-999" is not a tag of this gateway`,
		`plant.yaml:20:19: devices[0].tags[0].alarms.frozen.after: missing (how long an unchanged value is believed, e.g. 10m)`,
		`plant.yaml:20:31: devices[0].tags[0].alarms.frozen.tolerance: -1 is negative (0 or more, in engineering units)`,
		`plant.yaml:21:116: devices[0].tags[1].alarms.deviation.tag: "PT-1" measures pressure in "", this tag level in "" (redundant instruments measure the same in the same unit)`,
	}
	if got := problems(t, src); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cfg, err := Parse("plant.yaml", []byte(plantWith(lt101+`      - {name: LT-102, kind: level, unit: m, area: holding, address: 2, type: float32, range: {min: 0, max: 20},
         alarms: {latch: true, rate_of_change: {limit: 2}, deviation: {tag: LT-101, limit: 0.3}, frozen: {after: 10m}}}
`, "")))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Devices[0].Tags[1].Alarms
	if !a.Latch || a.RateOfChange.Window != DefaultRateWindow || a.Frozen.After.D().Minutes() != 10 {
		t.Fatalf("alarms %+v", a)
	}
}

func TestInterlocks(t *testing.T) {
	good := plantWith(lt101+lshh+xv, `interlocks:
  - name: IL-101
    condition: LT-101 >= 18.5 or LSHH-101
    on_delay: 1s
    actions:
      - {tag: XV-101, value: 0}
`)
	cfg, err := Parse("plant.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	il := cfg.Interlocks[0]
	if il.BadQuality != BadTrip || il.BypassMax != DefaultBypassMax || *il.Actions[0].Value != 0 {
		t.Fatalf("defaults: %+v", il)
	}
	src := plantWith(lt101+lshh+xv+xvRO, `interlocks:
  - name: IL-101
    condition: LT-101 >= 18.5 or LSHH-101 == 2 or LT-101 or TT-9 > 1
    bad_quality: maybe
    actions:
      - {tag: XV-102, value: 0}
      - {tag: LSHH-101, value: 1}
      - {tag: XV-101, value: 5}
      - {tag: XV-101}
  - name: IL-101
    condition: "LT-101 >= (18"
    bypass_max: 10s
`)
	want := []string{
		`plant.yaml:17:16: interlocks[0].condition: "LSHH-101" (column 19) is bool (0 or 1) and is compared with 2`,
		`plant.yaml:17:16: interlocks[0].condition: "LT-101" (column 36) is a level measurement, not an on/off signal: compare it, e.g. LT-101 >= 18.5`,
		`plant.yaml:17:16: interlocks[0].condition: "TT-9" (column 46) is not a tag of this gateway`,
		`plant.yaml:18:18: interlocks[0].bad_quality: "maybe" is not a policy (trip: a bad input counts as tripping; hold: it keeps its last good result)`,
		`plant.yaml:20:15: interlocks[0].actions[0].tag: "XV-102" is not writable (mark the output with writable: true at devices[0].tags[3], line 14, if the gateway may drive it)`,
		`plant.yaml:21:15: interlocks[0].actions[1].tag: "LSHH-101" is not writable (mark the output with writable: true at devices[0].tags[1], line 12, if the gateway may drive it)`,
		`plant.yaml:22:30: interlocks[0].actions[2].value: 5 cannot be written to bool tag "XV-101" (0 or 1)`,
		`plant.yaml:23:9: interlocks[0].actions[3].value: missing (the value to write, e.g. 0 to close a valve)`,
		`plant.yaml:24:5: interlocks[1].actions: missing (at least one output to write when it trips, e.g. {tag: XV-101, value: 0})`,
		`plant.yaml:24:11: interlocks[1].name: "IL-101" is already the name of interlocks[0] at line 16 (interlock names must be unique)`,
		`plant.yaml:25:16: interlocks[1].condition: at column 11: expected a tag or a number, found "(" in "LT-101 >= (18" (see docs/alarms.md for the condition language)`,
		`plant.yaml:26:17: interlocks[1].bypass_max: 10s is too short (at least 1m; a bypass needs time to be useful)`,
	}
	got := problems(t, src)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
