package config

import (
	"fmt"
	"strings"
)

// AlarmOutput drives a digital output (a beacon, a horn: usually a GPIO
// line of the box, or a coil) from the alarms of the given colours: 1
// while the process is in such an alarm (or a latching one awaits its
// acknowledgement), 0 otherwise. Unlike an interlock action it follows
// the alarms both ways and never latches. Shelved alarms do not count
// (they are off the operators' list). rules/alarmout drives it.
type AlarmOutput struct {
	Tag     string   `yaml:"tag"`     // required: a writable bool, bit or GPIO output tag
	Colours []string `yaml:"colours"` // default [red]
	// Unacknowledged makes a horn: 1 while any such alarm awaits its
	// acknowledgement, returned or not, so an acknowledgement silences it.
	Unacknowledged bool `yaml:"unacknowledged"`
}

// alarmOutputs checks every alarm output against the tags and the
// interlock actions: an output follows one master, so a tag written by an
// interlock cannot also follow the alarms (a clearing alarm would undo the
// trip).
func (v *validator) alarmOutputs(c *Config) {
	byName := c.TagByName()
	paths := map[string]string{} // tag name -> path of its first tag
	for i := range c.Devices {
		for j, t := range c.Devices[i].Tags {
			if _, dup := paths[t.Name]; !dup {
				paths[t.Name] = fmt.Sprintf("devices[%d].tags[%d]", i, j)
			}
		}
	}
	actions := map[string]string{} // tag -> path of the interlock action writing it
	for i, il := range c.Interlocks {
		for j, a := range il.Actions {
			if _, dup := actions[a.Tag]; !dup {
				actions[a.Tag] = fmt.Sprintf("interlocks[%d].actions[%d]", i, j)
			}
		}
	}
	seen := map[string]string{}
	for i := range c.AlarmOutputs {
		o := &c.AlarmOutputs[i]
		p := fmt.Sprintf("alarm_outputs[%d]", i)
		t, ok := byName[o.Tag]
		switch {
		case o.Tag == "":
			v.missing(p+".tag", "the output to drive, e.g. a beacon on a GPIO line: {tag: XA-101, colours: [red]}")
		case !ok:
			v.report(p+".tag", "%q is not a tag of this gateway", o.Tag)
		case !t.Writable:
			v.report(p+".tag", "%q is not writable (mark the output with writable: true at %s, line %d, if the gateway may drive it)", o.Tag, paths[o.Tag], v.line(paths[o.Tag]+".name"))
		case t.Area == AreaDiscrete || t.Area == AreaInput:
			v.report(p+".tag", "%q is a Modbus %s, which cannot be written (use a coil)", o.Tag, t.Area)
		case t.Type != TypeBool && t.Type != TypeBit && !(t.Node != "" && t.Kind == KindDigital):
			v.report(p+".tag", "%q is a %s tag; an alarm output is on or off (a coil, a bit or a GPIO output)", o.Tag, t.Kind)
		case actions[o.Tag] != "":
			v.report(p+".tag", "%q is also written by %s at line %d (an output follows one master: a clearing alarm would undo the trip)", o.Tag, actions[o.Tag], v.line(actions[o.Tag]+".tag"))
		case seen[o.Tag] != "":
			v.report(p+".tag", "%q is already driven by %s at line %d (merge their colours)", o.Tag, seen[o.Tag], v.line(seen[o.Tag]+".tag"))
		default:
			seen[o.Tag] = p
		}
		if !v.present(p + ".colours") {
			o.Colours = []string{ColourRed}
		}
		if len(o.Colours) == 0 {
			v.missing(p+".colours", "at least one colour of "+strings.Join(Colours, ", "))
		}
		for j, col := range o.Colours {
			if !oneOf(col, Colours) {
				v.report(fmt.Sprintf("%s.colours[%d]", p, j), "%q is not a colour (one of %s)", col, strings.Join(Colours, ", "))
			}
		}
	}
}
