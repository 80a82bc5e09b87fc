package rules

import (
	"strconv"
	"strings"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// DefaultFloodPerMinute is how many different alarms one device may raise
// in a minute before its further alarm events are summarised, unless its
// alarm_flood_limit says otherwise (ISA-18.2 calls more than 10 alarms in
// 10 minutes per operator a flood; a device raising more than 10 in one
// minute is far past that). The config package owns the number so that
// validation, docs and the engine cannot disagree.
const DefaultFloodPerMinute = config.DefaultAlarmFloodLimit

const floodWindow = time.Minute

// flood follows the alarm rate of one device. During a flood, alarm
// raises and clears that are not red are held and published as one
// alarm_flood summary a minute (and when the flood ends): summarised,
// never dropped. Red alarms always pass one by one. The alarm state
// machines are not affected: Active lists every alarm.
type flood struct {
	device  string
	limit   int         // raises a minute allowed; 0: never summarise
	ring    []time.Time // times of the last limit+1 raises
	head    int
	full    bool
	active  bool
	since   time.Time // start of the flood
	summary time.Time // last summary (or start)
	held    []model.Event
	total   int // events summarised in this flood
}

// SetFloodLimit sets how many alarms a minute every device may raise
// before the rest are summarised, overriding each device's
// alarm_flood_limit; 0 turns summarising off. Call it before the first
// Process.
func (e *Engine) SetFloodLimit(perMinute int) {
	for i := range e.floods {
		e.floods[i].setLimit(perMinute)
	}
}

// setLimit sizes the ring for limit and forgets the raises seen so far.
func (f *flood) setLimit(perMinute int) {
	f.limit = max(perMinute, 0)
	f.ring = nil
	if f.limit > 0 {
		f.ring = make([]time.Time, f.limit+1)
	}
	f.head, f.full = 0, false
}

// record notes a raise at at and reports whether the device now raises
// more than its limit a minute.
func (f *flood) record(at time.Time) bool {
	f.ring[f.head] = at
	f.head++
	if f.head == len(f.ring) {
		f.head, f.full = 0, true
	}
	return f.full && at.Sub(f.ring[f.head]) < floodWindow // ring[head] is the oldest
}

// over reports whether fewer than limit+1 raises fell in the last minute.
func (f *flood) over(now time.Time) bool {
	return !f.full || now.Sub(f.ring[f.head]) >= floodWindow
}

// distinct reports whether a raise counts towards a flood: a flood is
// many different alarms, so an alarm counts once a minute however often
// it chatters (deadband and delays are the cure for chattering).
func (e *Engine) distinct(ev model.Event) bool {
	_, a, _, err := e.alarmOf(ev.Tag, ev.Level)
	if err != nil {
		return true
	}
	if !a.counted.IsZero() && ev.Time.Sub(a.counted) < floodWindow {
		return false
	}
	a.counted = ev.Time
	return true
}

// summarise moves the flood-held events of out[start:] into their
// device's summary, in place, and returns out.
func (e *Engine) summarise(out []model.Event, start int) []model.Event {
	if len(out) == start {
		return out
	}
	keep := start
	for i := start; i < len(out); i++ {
		ev := out[i]
		fi, ok := e.floodOf[ev.Device]
		alarm := ev.Kind == model.AlarmRaised || ev.Kind == model.AlarmCleared
		if !ok || !alarm || ev.Priority == 1 || e.floods[fi].limit <= 0 {
			out[keep] = ev
			keep++
			continue
		}
		f := &e.floods[fi]
		if ev.Kind == model.AlarmRaised && e.distinct(ev) && f.record(ev.Time) && !f.active {
			f.active, f.since, f.summary, f.total = true, ev.Time, ev.Time, 0
			e.flooding++
			out[keep] = model.Event{Kind: model.AlarmFlood, Time: ev.Time, Device: f.device,
				Colour: config.ColourYellow, Priority: 3, State: "flood",
				Message: f.device + " alarm flood: more than " + strconv.Itoa(f.limit) +
					" alarms in one minute; its orange, yellow and blue alarms are summarised once a minute, red ones still pass one by one"}
			keep++
		}
		if f.active {
			f.held = append(f.held, ev)
			continue
		}
		out[keep] = ev
		keep++
	}
	return out[:keep]
}

// floodTick publishes summaries that are due at now and ends floods.
func (e *Engine) floodTick(now time.Time, out []model.Event) []model.Event {
	if e.flooding == 0 {
		return out
	}
	for i := range e.floods {
		f := &e.floods[i]
		if !f.active {
			continue
		}
		over := f.over(now)
		if !over && now.Sub(f.summary) < floodWindow {
			continue
		}
		out = append(out, f.summarise(now, over))
		if over {
			f.active = false
			e.flooding--
		}
	}
	return out
}

func (f *flood) summarise(now time.Time, over bool) model.Event {
	f.total += len(f.held)
	values := make(map[string]float64, len(f.held))
	var b strings.Builder
	b.WriteString(f.device + " alarm flood: " + strconv.Itoa(len(f.held)) + " alarm events summarised since " +
		f.summary.UTC().Format("15:04:05"))
	for i, ev := range f.held {
		key := ev.Tag + "/" + ev.Level
		if ev.Kind == model.AlarmCleared {
			key += "/cleared"
		}
		if ev.Value != nil {
			values[key] = *ev.Value
		} else {
			values[key] = 0
		}
		if i < 20 {
			b.WriteString("; " + key)
		}
	}
	if len(f.held) > 20 {
		b.WriteString("; ... (" + strconv.Itoa(len(f.held)-20) + " more in values)")
	}
	if over {
		b.WriteString("; flood over after " + now.Sub(f.since).Round(time.Second).String() + ", " + strconv.Itoa(f.total) + " events summarised in all")
	}
	f.held, f.summary = f.held[:0], now
	state := "flood"
	if over {
		state = "flood_over"
	}
	return model.Event{Kind: model.AlarmFlood, Time: now.UTC(), Device: f.device, Colour: config.ColourYellow, Priority: 3,
		State: state, Values: values, Message: b.String()}
}

// carryFloods takes over the floods of old that are going on: the held
// events must still be published, summarised (they were never dropped
// before a reload, and a reload must not drop them either). A flood of a
// device that the new config still summarises goes on as it was (its
// count of raises restarts when the limit changed); the held events of
// any other device go out as a final summary at the next Tick.
func (e *Engine) carryFloods(old *Engine) {
	for i := range old.floods {
		of := &old.floods[i]
		if !of.active {
			continue
		}
		fi, ok := e.floodOf[of.device]
		if !ok || e.floods[fi].limit <= 0 {
			at := of.summary // the engine keeps no clock: the newest it saw
			for _, ev := range of.held {
				if ev.Time.After(at) {
					at = ev.Time
				}
			}
			e.carriedOut = append(e.carriedOut, of.summarise(at, true))
			continue
		}
		nf := &e.floods[fi]
		nf.active, nf.since, nf.summary, nf.total = true, of.since, of.summary, of.total
		nf.held = append(nf.held[:0], of.held...)
		if nf.limit == of.limit {
			copy(nf.ring, of.ring)
			nf.head, nf.full = of.head, of.full
		}
		e.flooding++
	}
}
