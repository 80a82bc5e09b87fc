package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"hazgate/rules/interlock/cond"
)

// interlocks checks every interlock against the tags of the config, and
// the deviation partners of alarms (both need every tag known). tags maps
// a tag name to its field path.
func (v *validator) interlocks(c *Config, tags map[string]string) {
	byName := map[string]*Tag{}
	for i := range c.Devices {
		for j := range c.Devices[i].Tags {
			t := &c.Devices[i].Tags[j]
			if _, dup := byName[t.Name]; !dup {
				byName[t.Name] = t
			}
		}
	}
	for i := range c.Devices {
		for j := range c.Devices[i].Tags {
			t := &c.Devices[i].Tags[j]
			if t.Alarms == nil || t.Alarms.Deviation == nil || t.Alarms.Deviation.Tag == "" {
				continue
			}
			p := fmt.Sprintf("devices[%d].tags[%d].alarms.deviation.tag", i, j)
			if o, ok := byName[t.Alarms.Deviation.Tag]; !ok {
				v.report(p, "%q is not a tag of this gateway", t.Alarms.Deviation.Tag)
			} else if o.Kind != t.Kind || o.Unit != t.Unit {
				v.report(p, "%q measures %s in %q, this tag %s in %q (redundant instruments measure the same in the same unit)", o.Name, o.Kind, o.Unit, t.Kind, t.Unit)
			}
		}
	}
	names := map[string]string{}
	for i := range c.Interlocks {
		il := &c.Interlocks[i]
		p := fmt.Sprintf("interlocks[%d]", i)
		switch {
		case strings.TrimSpace(il.Name) == "":
			v.missing(p+".name", "a name for the interlock, unique in the gateway, e.g. IL-101")
		case names[il.Name] != "":
			v.report(p+".name", "%q is already the name of %s at line %d (interlock names must be unique)", il.Name, names[il.Name], v.line(names[il.Name]+".name"))
		default:
			names[il.Name] = p
		}
		v.condition(il, p+".condition", byName)
		if il.OnDelay < 0 {
			v.report(p+".on_delay", "%s is negative (0 or more)", il.OnDelay)
		}
		switch il.BadQuality {
		case "":
			il.BadQuality = BadTrip
		case BadTrip, BadHold:
		default:
			v.report(p+".bad_quality", "%q is not a policy (trip: a bad input counts as tripping; hold: it keeps its last good result)", il.BadQuality)
		}
		if !v.present(p + ".bypass_max") {
			il.BypassMax = DefaultBypassMax
		} else if il.BypassMax < Duration(time.Minute) {
			v.report(p+".bypass_max", "%s is too short (at least 1m; a bypass needs time to be useful)", il.BypassMax)
		}
		if len(il.Actions) == 0 {
			v.missing(p+".actions", "at least one output to write when it trips, e.g. {tag: XV-101, value: 0}")
		}
		for j, a := range il.Actions {
			ap := fmt.Sprintf("%s.actions[%d]", p, j)
			t, ok := byName[a.Tag]
			switch {
			case a.Tag == "":
				v.missing(ap+".tag", "the output tag to write")
			case !ok:
				v.report(ap+".tag", "%q is not a tag of this gateway", a.Tag)
			case !t.Writable:
				v.report(ap+".tag", "%q is not writable (mark the output with writable: true at %s, line %d, if the gateway may drive it)", a.Tag, tags[a.Tag], v.line(tags[a.Tag]+".name"))
			case t.Area == AreaDiscrete || t.Area == AreaInput:
				v.report(ap+".tag", "%q is a Modbus %s, which cannot be written (use a coil or holding register)", a.Tag, t.Area)
			}
			if a.Value == nil {
				v.missing(ap+".value", "the value to write, e.g. 0 to close a valve")
			} else if ok && (t.Type == TypeBool || t.Type == TypeBit) && *a.Value != 0 && *a.Value != 1 {
				v.report(ap+".value", "%s cannot be written to %s tag %q (0 or 1)", num(*a.Value), t.Type, a.Tag)
			}
		}
	}
}

// condition compiles an interlock's condition and checks its tags: each
// must exist, a bare tag must be digital, a digital tag is compared with 0
// or 1 only.
func (v *validator) condition(il *Interlock, path string, byName map[string]*Tag) {
	if strings.TrimSpace(il.Condition) == "" {
		v.missing(path, `when the interlock trips, e.g. "LT-101 >= 18.5 or LSHH-101"`)
		return
	}
	e, err := cond.Parse(il.Condition)
	if err != nil {
		var ce *cond.Error
		if errors.As(err, &ce) {
			v.report(path, "%s in %q (see docs/alarms.md for the condition language)", ce.Error(), il.Condition)
		} else {
			v.report(path, "%v", err)
		}
		return
	}
	for _, l := range e.Leaves {
		for _, ti := range l.Tags {
			name := e.Tags[ti]
			t, ok := byName[name]
			if !ok {
				v.report(path, "%q (column %d) is not a tag of this gateway", name, l.Pos+1)
				continue
			}
			digital := t.Type == TypeBool || t.Type == TypeBit
			if l.Bare && !digital {
				v.report(path, "%q (column %d) is a %s measurement, not an on/off signal: compare it, e.g. %s >= 18.5", name, l.Pos+1, t.Kind, name)
			}
			for _, k := range l.Const {
				if digital && k != 0 && k != 1 {
					v.report(path, "%q (column %d) is %s (0 or 1) and is compared with %s", name, l.Pos+1, t.Type, num(k))
				}
			}
		}
	}
}
