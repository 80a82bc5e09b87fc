package config

import (
	"strings"
	"testing"
)

// A valid GPIO device gets the host backend, typed bool lines, bias none
// on inputs and initial 0 on outputs; an interlock may drive its output
// and read its input.
func TestGPIODefaults(t *testing.T) {
	src := serialHead + `  - name: box-io
    protocol: gpio
    tags:
      - {name: GSA-201, kind: digital, gpio: {pin: GPIO22, direction: in, active_low: true, debounce: 50ms}}
      - {name: XA-901, kind: digital, writable: true, gpio: {pin: gpiochip0/17, direction: out}}
interlocks:
  - {name: IL-9, condition: GSA-201, actions: [{tag: XA-901, value: 1}]}
`
	cfg, err := Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Devices[0]
	if d.GPIO == nil || d.GPIO.Backend != GPIOBackendHost {
		t.Errorf("backend %+v, want host", d.GPIO)
	}
	in, out := d.Tags[0], d.Tags[1]
	if in.Type != TypeBool || out.Type != TypeBool {
		t.Errorf("types %q %q, want bool", in.Type, out.Type)
	}
	if in.GPIO.Pull != GPIOPullNone || in.GPIO.Debounce.D().Milliseconds() != 50 || !in.GPIO.ActiveLow {
		t.Errorf("input %+v", *in.GPIO)
	}
	if out.GPIO.Initial == nil || *out.GPIO.Initial != 0 {
		t.Errorf("output initial %v, want 0", out.GPIO.Initial)
	}
}

func TestGPIOPin(t *testing.T) {
	for in, want := range map[string]string{"GPIO17": "GPIO17", "gpiochip0/17": "gpiochip0/17", "gpiochip10/007": "gpiochip10/7", "PA7": "PA7"} {
		p, err := ParseGPIOPin(in)
		if err != nil || p.String() != want {
			t.Errorf("%q: %v %v, want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"17", "gpiochip0/x", "chip0/17", "GPIO 17", "gpiochip0/70000"} {
		if p, err := ParseGPIOPin(in); err == nil {
			t.Errorf("%q accepted as %v", in, p)
		}
	}
}

func TestGPIOProblems(t *testing.T) {
	cases := []struct {
		name, devices string
		want          []string
	}{{
		name: "device and line mistakes",
		devices: `  - name: box-io
    protocol: gpio
    address: 10.0.0.1:502
    gpio: {backend: sysfs}
    tags:
      - {name: A, kind: level, range: {min: 0, max: 1}, gpio: {pin: "17", direction: in}}
      - {name: B, kind: digital, area: coil, address: 0, gpio: {pin: GPIO5, direction: sideways}}
      - {name: C, kind: digital, writable: true, gpio: {pin: GPIO6, direction: in, pull: high, debounce: 2m, initial: 1}}
      - {name: D, kind: digital, gpio: {pin: GPIO6, direction: out, pull: up, debounce: 10ms, initial: 2}}
      - {name: E, kind: digital}
      - {name: F, kind: digital, gpio: {direction: in}}
`,
		want: []string{
			`plant.yaml:6:14: devices[0].address: is not used by protocol gpio: its lines are the box's own (remove it)`,
			`plant.yaml:7:21: devices[0].gpio.backend: "sysfs" is not a GPIO backend (host: the box's lines; fake: in memory, for tests and the demo)`,
			`plant.yaml:9:25: devices[0].tags[0].kind: "level": a GPIO line is on or off (kind: digital)`,
			`plant.yaml:9:69: devices[0].tags[0].gpio.pin: "17" is a bare number, which names a different line on each chip (write the line name like GPIO17, or chip/offset like gpiochip0/17)`,
			`plant.yaml:10:40: devices[0].tags[1].area: is a Modbus field; a GPIO tag names its line (gpio: {pin: GPIO17, direction: in} or {pin: gpiochip0/17, direction: out})`,
			`plant.yaml:10:55: devices[0].tags[1].address: is a Modbus field; a GPIO tag names its line (gpio: {pin: GPIO17, direction: in} or {pin: gpiochip0/17, direction: out})`,
			`plant.yaml:10:88: devices[0].tags[1].gpio.direction: "sideways" is not a direction (in or out)`,
			`plant.yaml:11:44: devices[0].tags[2].writable: an input line cannot be written (direction: out for a line the gateway drives)`,
			`plant.yaml:11:90: devices[0].tags[2].gpio.pull: "high" is not a bias (none, up or down)`,
			`plant.yaml:11:106: devices[0].tags[2].gpio.debounce: 2m0s is too long (at most 1m0s; a contact that bounces longer is faulty, and a long filter delays its alarm)`,
			`plant.yaml:11:119: devices[0].tags[2].gpio.initial: applies to outputs only (this line is direction: in)`,
			`plant.yaml:12:46: devices[0].tags[3].gpio.pin: GPIO6 is already the line of devices[0].tags[2] at line 11 (one tag per line)`,
			`plant.yaml:12:75: devices[0].tags[3].gpio.pull: applies to inputs only (this line is direction: out)`,
			`plant.yaml:12:89: devices[0].tags[3].gpio.debounce: applies to inputs only (this line is direction: out)`,
			`plant.yaml:12:104: devices[0].tags[3].gpio.initial: 2 is not 0 or 1 (the logical state driven when the line is opened)`,
			`plant.yaml:13:9: devices[0].tags[4].gpio: missing (the line, {pin: GPIO17, direction: in} or {pin: gpiochip0/17, direction: out})`,
			`plant.yaml:14:40: devices[0].tags[5].gpio.pin: missing (the line's name as gpioinfo lists it, like GPIO17, or chip/offset like gpiochip0/17)`,
		},
	}, {
		name: "gpio where it does not belong; interlock on a read-only line",
		devices: `  - name: plc
    protocol: modbus-tcp
    address: 10.0.0.1:502
    gpio: {backend: fake}
    tags:
      - {name: A, kind: digital, area: coil, address: 0, gpio: {pin: GPIO5, direction: out}}
  - name: box-io
    protocol: gpio
    tags:
      - {name: XA-1, kind: digital, gpio: {pin: GPIO6, direction: out}}
interlocks:
  - {name: IL-1, condition: A, actions: [{tag: XA-1, value: 1}]}
`,
		want: []string{
			`plant.yaml:7:11: devices[0].gpio: is only for protocol gpio (remove it)`,
			`plant.yaml:9:64: devices[0].tags[0].gpio: is only for the tags of a device with protocol: gpio (remove it)`,
			`plant.yaml:15:48: interlocks[0].actions[0].tag: "XA-1" is not writable (mark the output with writable: true at devices[1].tags[0], line 13, if the gateway may drive it)`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, serialHead+c.devices)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}
