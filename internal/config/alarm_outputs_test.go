package config

import (
	"slices"
	"strings"
	"testing"
)

const alarmOutputDevices = serialHead + `  - name: plc
    protocol: modbus-tcp
    address: 10.0.0.1:502
    tags:
      - {name: SP-1, kind: count, area: holding, address: 0, writable: true}
      - {name: XV-1, kind: digital, area: coil, address: 0, writable: true}
  - name: box-io
    protocol: gpio
    tags:
      - {name: XA-1, kind: digital, writable: true, gpio: {pin: GPIO17, direction: out}}
      - {name: XA-2, kind: digital, writable: true, gpio: {pin: GPIO27, direction: out}}
      - {name: XA-3, kind: digital, gpio: {pin: GPIO22, direction: out}}
`

func TestAlarmOutputDefaults(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(alarmOutputDevices+`alarm_outputs:
  - {tag: XA-1}
  - {tag: XA-2, colours: [red, orange], unacknowledged: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.AlarmOutputs; len(a) != 2 || !slices.Equal(a[0].Colours, []string{"red"}) || a[0].Unacknowledged || !slices.Equal(a[1].Colours, []string{"red", "orange"}) || !a[1].Unacknowledged {
		t.Errorf("alarm outputs %+v", a)
	}
}

func TestAlarmOutputProblems(t *testing.T) {
	got := problems(t, alarmOutputDevices+`interlocks:
  - {name: IL-1, condition: "true", actions: [{tag: XV-1, value: 0}]}
alarm_outputs:
  - {colours: [red]}
  - {tag: NOPE}
  - {tag: XA-3}
  - {tag: SP-1}
  - {tag: XV-1}
  - {tag: XA-1, colours: [purple]}
  - {tag: XA-1}
  - {tag: XA-2, colours: []}
`)
	want := []string{
		`plant.yaml:19:5: alarm_outputs[0].tag: missing (the output to drive, e.g. a beacon on a GPIO line: {tag: XA-101, colours: [red]})`,
		`plant.yaml:20:11: alarm_outputs[1].tag: "NOPE" is not a tag of this gateway`,
		`plant.yaml:21:11: alarm_outputs[2].tag: "XA-3" is not writable (mark the output with writable: true at devices[1].tags[2], line 15, if the gateway may drive it)`,
		`plant.yaml:22:11: alarm_outputs[3].tag: "SP-1" is a count tag; an alarm output is on or off (a coil, a bit or a GPIO output)`,
		`plant.yaml:23:11: alarm_outputs[4].tag: "XV-1" is also written by interlocks[0].actions[0] at line 17 (an output follows one master: a clearing alarm would undo the trip)`,
		`plant.yaml:24:27: alarm_outputs[5].colours[0]: "purple" is not a colour (one of red, orange, yellow, blue)`,
		`plant.yaml:25:11: alarm_outputs[6].tag: "XA-1" is already driven by alarm_outputs[5] at line 24 (merge their colours)`,
		`plant.yaml:26:26: alarm_outputs[7].colours: missing (at least one colour of red, orange, yellow, blue)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
