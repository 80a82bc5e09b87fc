package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

var (
	gpioBackends   = []string{GPIOBackendHost, GPIOBackendFake}
	gpioDirections = []string{GPIOIn, GPIOOut}
	gpioPulls      = []string{GPIOPullNone, GPIOPullUp, GPIOPullDown}
)

// MaxGPIODebounce bounds TagGPIO.Debounce: a contact that bounces for
// longer is faulty, and a longer filter would hide an alarm.
const MaxGPIODebounce = Duration(time.Minute)

const gpioLike = "{pin: GPIO17, direction: in} or {pin: gpiochip0/17, direction: out}"

// gpio fills in the defaults of every GPIO device and checks its lines:
// the pin, direction and what applies to each direction. A pin may be used
// by one tag only. The GPIO fields are refused on other protocols, so a
// misplaced gpio: block is not silently ignored.
func (v *validator) gpio(c *Config) {
	pins := map[string]string{} // pin -> path of the first tag on it
	for i := range c.Devices {
		d := &c.Devices[i]
		path := fmt.Sprintf("devices[%d]", i)
		if d.Protocol != ProtocolGPIO {
			if d.GPIO != nil {
				v.report(path+".gpio", "is only for protocol %s (remove it)", ProtocolGPIO)
			}
			for j, t := range d.Tags {
				if t.GPIO != nil {
					v.report(fmt.Sprintf("%s.tags[%d].gpio", path, j), "is only for the tags of a device with protocol: %s (remove it)", ProtocolGPIO)
				}
			}
			continue
		}
		if d.GPIO == nil {
			d.GPIO = &GPIO{}
		}
		if d.GPIO.Backend == "" {
			d.GPIO.Backend = GPIOBackendHost
		}
		if !oneOf(d.GPIO.Backend, gpioBackends) {
			v.report(path+".gpio.backend", "%q is not a GPIO backend (host: the box's lines; fake: in memory, for tests and the demo)", d.GPIO.Backend)
		}
		for _, f := range []string{"address", "unit_id", "max_gap", "opcua"} {
			if v.present(path + "." + f) {
				v.report(path+"."+f, "is not used by protocol %s: its lines are the box's own (remove it)", ProtocolGPIO)
			}
		}
		for j := range d.Tags {
			v.gpioTag(&d.Tags[j], fmt.Sprintf("%s.tags[%d]", path, j), pins)
		}
	}
}

func (v *validator) gpioTag(t *Tag, path string, pins map[string]string) {
	if t.Kind != "" && t.Kind != KindDigital {
		v.report(path+".kind", "%q: a GPIO line is on or off (kind: digital)", t.Kind)
	}
	for _, f := range []string{"area", "address", "type", "order"} {
		if v.present(path + "." + f) {
			v.report(path+"."+f, "is a Modbus field; a GPIO tag names its line (gpio: %s)", gpioLike)
		}
	}
	for _, f := range []string{"node", "opcua"} {
		if v.present(path + "." + f) {
			v.report(path+"."+f, "is an OPC UA field; a GPIO tag names its line (gpio: %s)", gpioLike)
		}
	}
	g := t.GPIO
	if g == nil {
		v.missing(path+".gpio", "the line, "+gpioLike)
		return
	}
	p := path + ".gpio"
	if g.Pin == "" {
		v.missing(p+".pin", "the line's name as gpioinfo lists it, like GPIO17, or chip/offset like gpiochip0/17")
	} else if key, err := ParseGPIOPin(g.Pin); err != nil {
		v.report(p+".pin", "%v", err)
	} else if first, dup := pins[key.String()]; dup {
		v.report(p+".pin", "%s is already the line of %s at line %d (one tag per line)", g.Pin, first, v.line(first+".name"))
	} else {
		pins[key.String()] = path
	}

	switch g.Direction {
	case "":
		v.missing(p+".direction", "in: a contact read as a digital tag; out: a beacon, horn or relay the gateway drives")
	case GPIOIn:
		if t.Writable {
			v.report(path+".writable", "an input line cannot be written (direction: out for a line the gateway drives)")
		}
		if v.present(p + ".initial") {
			v.report(p+".initial", "applies to outputs only (this line is direction: in)")
		}
		if g.Pull == "" {
			g.Pull = GPIOPullNone
		}
		if !oneOf(g.Pull, gpioPulls) {
			v.report(p+".pull", "%q is not a bias (none, up or down)", g.Pull)
		}
		switch {
		case g.Debounce < 0:
			v.report(p+".debounce", "%s is negative (0 passes every read on)", g.Debounce)
		case g.Debounce > MaxGPIODebounce:
			v.report(p+".debounce", "%s is too long (at most %s; a contact that bounces longer is faulty, and a long filter delays its alarm)", g.Debounce, MaxGPIODebounce)
		}
	case GPIOOut:
		for _, f := range []string{"pull", "debounce"} {
			if v.present(p + "." + f) {
				v.report(p+"."+f, "applies to inputs only (this line is direction: out)")
			}
		}
		if g.Initial == nil {
			g.Initial = new(int)
		} else if *g.Initial != 0 && *g.Initial != 1 {
			v.report(p+".initial", "%d is not 0 or 1 (the logical state driven when the line is opened)", *g.Initial)
		}
	default:
		v.report(p+".direction", "%q is not a direction (in or out)", g.Direction)
	}
}

// GPIOPin is a parsed TagGPIO.Pin: a line name, or a chip and an offset.
type GPIOPin struct {
	Name   string // the line's name (GPIO17), empty with Chip
	Chip   string // gpiochip0
	Offset int    // the line's offset on Chip
}

func (p GPIOPin) String() string {
	if p.Chip != "" {
		return p.Chip + "/" + strconv.Itoa(p.Offset)
	}
	return p.Name
}

var gpioChipLine = regexp.MustCompile(`^(gpiochip[0-9]+)/([0-9]+)$`)

// ParseGPIOPin parses a pin: GPIO17 (a line name) or gpiochip0/17 (chip
// and offset). A bare number is refused: it would name a different line
// on each chip.
func ParseGPIOPin(s string) (GPIOPin, error) {
	if m := gpioChipLine.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[2])
		if err != nil || n > 65535 {
			return GPIOPin{}, fmt.Errorf("%q: line offset %s is out of range (0..65535)", s, m[2])
		}
		return GPIOPin{Chip: m[1], Offset: n}, nil
	}
	switch {
	case strings.Contains(s, "/"):
		return GPIOPin{}, fmt.Errorf("%q is not chip/offset (like gpiochip0/17, as gpioinfo lists chips and lines)", s)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return GPIOPin{}, fmt.Errorf("%q contains a space or control character (a line name like GPIO17)", s)
	case strings.Trim(s, "0123456789") == "":
		return GPIOPin{}, fmt.Errorf("%q is a bare number, which names a different line on each chip (write the line name like GPIO%s, or chip/offset like gpiochip0/%s)", s, s, s)
	case len(s) > 31:
		return GPIOPin{}, fmt.Errorf("%q is longer than a Linux line name can be (31 bytes)", s)
	}
	return GPIOPin{Name: s}, nil
}
