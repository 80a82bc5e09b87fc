// Package rules is the gateway's local alarm engine: it evaluates every
// sample against its tag's threshold alarms (hh, h, l, ll with deadband and
// on/off delays) and watches each tag for sensor and communication faults
// (bad quality for too long, no sample at all for too long).
//
// It runs on every sample whether or not the broker is reachable, so it is
// built to be fast (no allocation unless an event is produced) and
// deterministic: all timing comes from sample times and from the explicit
// now passed to Tick, never from the wall clock, so tests need no sleeps.
//
// Decisions:
//   - Only Good samples are compared with thresholds. A Bad or Uncertain
//     sample, or a Good sample whose value is NaN, neither raises nor clears
//     an alarm: an active alarm stays active (we do not know the process is
//     safe again) and a normal one stays normal. It also resets any pending
//     on- or off-delay, because the condition has not been seen to hold
//     continuously.
//   - An event's Time is the time of the sample (or of the Tick) at which
//     the condition, including its delay, was found complete.
//   - A fault is raised once a tag's samples have been Bad continuously for
//     its device's CommLossAfter (measured from the first Bad sample of the
//     run), or once no sample at all arrived for CommLossAfter (stale, seen
//     by Tick). Only a Good sample clears a fault. An Uncertain sample ends
//     a run of Bad samples (the device answered) but does not clear a fault.
//   - A tag is one fault at a time: stale and bad quality share it.
package rules

import (
	"math"
	"strconv"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// LevelFault is the Level of an ActiveAlarm that is a fault rather than a
// threshold alarm.
const LevelFault = "fault"

// defaultCommLossAfter applies when a device's CommLossAfter is zero (the
// config loader normally fills the same default in).
const defaultCommLossAfter = 10 * time.Second

// ActiveAlarm is one alarm or fault that is currently active.
type ActiveAlarm struct {
	Tag    string
	Device string
	Level  string    // hh, h, l, ll, or LevelFault
	Since  time.Time // when it was raised
	Value  float64   // the value that raised it (0 for a fault)
	Limit  float64   // the threshold (0 for a fault)
	Reason string    // for a fault: why
}

// Engine holds the alarm and fault state of every configured tag.
//
// An Engine is not safe for concurrent use: the pipeline owns it and calls
// Process, Tick and Active from one goroutine.
type Engine struct {
	index map[string]int32
	tags  []tagState
}

// direction of a threshold.
type direction uint8

const (
	high direction = iota // value >= limit raises
	low                   // value <= limit raises
)

// levelState is one threshold level of one tag: an independent alarm.
type levelState struct {
	name   string // hh, h, l, ll
	label  string // HH, H, ... or "first"/"second" for gas
	dir    direction
	limit  float64
	clear  float64 // limit -/+ deadband: beyond it the alarm may clear
	active bool
	// pending: the condition that changes the state (raise while normal,
	// clear while active) has held since pendingSince.
	pending      bool
	pendingSince time.Time
	since        time.Time // when it became active
	value        float64   // the value that raised it
}

// raiseCond reports whether v satisfies the raise condition.
func (l *levelState) raiseCond(v float64) bool {
	if l.dir == high {
		return v >= l.limit
	}
	return v <= l.limit
}

// clearCond reports whether v satisfies the clear condition.
func (l *levelState) clearCond(v float64) bool {
	if l.dir == high {
		return v < l.clear
	}
	return v > l.clear
}

type tagState struct {
	name, device string
	prefix       string // message prefix: name and description (or kind): "LT-101 level"
	unit         string
	digital      bool

	onDelay, offDelay time.Duration
	commLossAfter     time.Duration
	staleReason       string

	// levels in raise order: h, hh, l, ll (only the configured ones).
	levels []levelState

	lastValue float64 // last Good value, for Tick completing a delay
	haveValue bool

	lastSeen time.Time // time of the last sample of any quality; zero = never

	badRun     bool      // the samples since badSince have all been Bad
	badSince   time.Time //
	lastReason string    // reason of the last Bad sample

	fault       bool
	faultSince  time.Time
	faultReason string
}

// New builds one rule set per tag of cfg.Devices[*].Tags[*]. A tag name
// that appears twice keeps the first definition (the config validator
// rejects duplicates).
func New(cfg *config.Config) *Engine {
	e := &Engine{index: make(map[string]int32)}
	if cfg == nil {
		return e
	}
	for _, dev := range cfg.Devices {
		commLoss := time.Duration(dev.CommLossAfter)
		if commLoss <= 0 {
			commLoss = defaultCommLossAfter
		}
		for _, tag := range dev.Tags {
			if _, dup := e.index[tag.Name]; dup {
				continue
			}
			e.index[tag.Name] = int32(len(e.tags))
			e.tags = append(e.tags, newTagState(dev.Name, commLoss, tag))
		}
	}
	return e
}

func newTagState(device string, commLoss time.Duration, tag config.Tag) tagState {
	ts := tagState{
		name:          tag.Name,
		device:        device,
		prefix:        tag.Name,
		unit:          tag.Unit,
		digital:       tag.Type == config.TypeBool || tag.Type == config.TypeBit || tag.Kind == config.KindDigital,
		commLossAfter: commLoss,
		staleReason:   "stale: no sample for " + commLoss.String(),
	}
	if d := tag.Description; d != "" {
		ts.prefix += " " + d
	} else if tag.Kind != "" {
		ts.prefix += " " + tag.Kind
	}
	a := tag.Alarms
	if a == nil {
		return ts
	}
	ts.onDelay = time.Duration(a.OnDelay)
	ts.offDelay = time.Duration(a.OffDelay)
	db := math.Abs(a.Deadband)
	gas := tag.Kind == config.KindGas
	add := func(name, label string, dir direction, limit *float64) {
		if limit == nil {
			return
		}
		l := levelState{name: name, label: label, dir: dir, limit: *limit}
		if dir == high {
			l.clear = *limit - db
		} else {
			l.clear = *limit + db
		}
		ts.levels = append(ts.levels, l)
	}
	hLabel, hhLabel := "H", "HH"
	if gas {
		// GB/T 50493: 一级报警 (first alarm) and 二级报警 (second alarm).
		hLabel, hhLabel = "first", "second"
	}
	add(model.LevelH, hLabel, high, a.H)
	add(model.LevelHH, hhLabel, high, a.HH)
	add(model.LevelL, "L", low, a.L)
	add(model.LevelLL, "LL", low, a.LL)
	return ts
}

// Process evaluates samples in order, appends the events they cause to out
// and returns it. Samples of tags that are not configured are ignored.
// Within one sample, clears come before raises, the more severe level
// first for clears (hh before h) and last for raises (h before hh).
func (e *Engine) Process(samples []model.Sample, out []model.Event) []model.Event {
	for i := range samples {
		s := &samples[i]
		idx, ok := e.index[s.Tag]
		if !ok {
			continue
		}
		out = e.tags[idx].process(s, out)
	}
	return out
}

func (t *tagState) process(s *model.Sample, out []model.Event) []model.Event {
	if s.Time.After(t.lastSeen) {
		t.lastSeen = s.Time
	}
	good := s.Quality == model.Good && !math.IsNaN(s.Value)
	if !good {
		// Neither raise nor clear on a value we cannot trust, and the
		// condition has not held continuously any more.
		for i := range t.levels {
			t.levels[i].pending = false
		}
		if s.Quality == model.Bad {
			if !t.badRun {
				t.badRun = true
				t.badSince = s.Time
			}
			t.lastReason = s.Reason
			if !t.fault && s.Time.Sub(t.badSince) >= t.commLossAfter {
				out = t.raiseFault(s.Time, s.Reason, out)
			}
		} else {
			t.badRun = false
		}
		return out
	}
	t.badRun = false
	if t.fault {
		out = t.clearFault(s, out)
	}
	t.lastValue, t.haveValue = s.Value, true
	return t.evaluate(s.Value, s.Time, out)
}

// evaluate runs the threshold state machines with value v seen at time at.
func (t *tagState) evaluate(v float64, at time.Time, out []model.Event) []model.Event {
	// Clears first, most severe first: walk the levels backwards within
	// each direction (ll before l, hh before h).
	for i := len(t.levels) - 1; i >= 0; i-- {
		l := &t.levels[i]
		if !l.active {
			continue
		}
		if !l.clearCond(v) {
			l.pending = false
			continue
		}
		if !l.pending {
			l.pending, l.pendingSince = true, at
		}
		if at.Sub(l.pendingSince) >= t.offDelay {
			out = t.clearAlarm(l, v, at, out)
		}
	}
	for i := range t.levels {
		l := &t.levels[i]
		if l.active {
			continue
		}
		if !l.raiseCond(v) {
			l.pending = false
			continue
		}
		if !l.pending {
			l.pending, l.pendingSince = true, at
		}
		if at.Sub(l.pendingSince) >= t.onDelay {
			out = t.raiseAlarm(l, v, at, out)
		}
	}
	return out
}

// Tick runs the time-driven checks at now: on- and off-delays that expired
// without a new sample, a run of Bad samples that has lasted CommLossAfter,
// and stale tags (no sample at all for CommLossAfter). A tag that has never
// had a sample counts its silence from the first Tick.
func (e *Engine) Tick(now time.Time, out []model.Event) []model.Event {
	for i := range e.tags {
		t := &e.tags[i]
		if t.lastSeen.IsZero() {
			t.lastSeen = now
			continue
		}
		if !t.fault {
			switch {
			case t.badRun && now.Sub(t.badSince) >= t.commLossAfter:
				out = t.raiseFault(now, t.lastReason, out)
			case now.Sub(t.lastSeen) >= t.commLossAfter:
				out = t.raiseFault(now, t.staleReason, out)
			}
		}
		if !t.haveValue {
			continue
		}
		// Delays: a level is pending only while the last sample was Good
		// and satisfied its condition, so completing it needs no new value.
		for j := len(t.levels) - 1; j >= 0; j-- {
			l := &t.levels[j]
			if l.active && l.pending && now.Sub(l.pendingSince) >= t.offDelay {
				out = t.clearAlarm(l, t.lastValue, now, out)
			}
		}
		for j := range t.levels {
			l := &t.levels[j]
			if !l.active && l.pending && now.Sub(l.pendingSince) >= t.onDelay {
				out = t.raiseAlarm(l, t.lastValue, now, out)
			}
		}
	}
	return out
}

// Active lists the alarms and faults that are active now, in config order
// of their tags; per tag the fault first, then h, hh, l, ll.
func (e *Engine) Active() []ActiveAlarm {
	var out []ActiveAlarm
	for i := range e.tags {
		t := &e.tags[i]
		if t.fault {
			out = append(out, ActiveAlarm{Tag: t.name, Device: t.device, Level: LevelFault, Since: t.faultSince, Reason: t.faultReason})
		}
		for j := range t.levels {
			l := &t.levels[j]
			if l.active {
				out = append(out, ActiveAlarm{Tag: t.name, Device: t.device, Level: l.name, Since: l.since, Value: l.value, Limit: l.limit})
			}
		}
	}
	return out
}

func (t *tagState) raiseAlarm(l *levelState, v float64, at time.Time, out []model.Event) []model.Event {
	l.active, l.pending, l.since, l.value = true, false, at, v
	op := " >= "
	if l.dir == low {
		op = " <= "
	}
	msg := t.prefix + " " + l.label + " alarm: " + t.format(v) + op + t.format(l.limit)
	return append(out, model.Event{
		Kind: model.AlarmRaised, Time: at.UTC(), Device: t.device, Tag: t.name, Level: l.name,
		Value: model.Float(v), Limit: model.Float(l.limit), Message: msg,
	})
}

func (t *tagState) clearAlarm(l *levelState, v float64, at time.Time, out []model.Event) []model.Event {
	l.active, l.pending = false, false
	op := " < "
	if l.dir == low {
		op = " > "
	}
	msg := t.prefix + " " + l.label + " alarm cleared: " + t.format(v) + op + t.format(l.clear)
	if l.clear != l.limit {
		msg += " (limit " + t.format(l.limit) + " with deadband)"
	}
	return append(out, model.Event{
		Kind: model.AlarmCleared, Time: at.UTC(), Device: t.device, Tag: t.name, Level: l.name,
		Value: model.Float(v), Limit: model.Float(l.limit), Message: msg,
	})
}

func (t *tagState) raiseFault(at time.Time, reason string, out []model.Event) []model.Event {
	t.fault, t.faultSince, t.faultReason = true, at, reason
	return append(out, model.Event{
		Kind: model.FaultRaised, Time: at.UTC(), Device: t.device, Tag: t.name, Reason: reason,
		Message: t.prefix + " fault: " + reason,
	})
}

func (t *tagState) clearFault(s *model.Sample, out []model.Event) []model.Event {
	reason := t.faultReason
	t.fault, t.faultReason = false, ""
	return append(out, model.Event{
		Kind: model.FaultCleared, Time: s.Time.UTC(), Device: t.device, Tag: t.name, Reason: reason,
		Value:   model.Float(s.Value),
		Message: t.prefix + " fault cleared: good value " + t.format(s.Value) + " after " + reason,
	})
}

// format writes a value with the tag's unit: two decimals for analog tags,
// a plain number for digital ones.
func (t *tagState) format(v float64) string {
	var s string
	if t.digital {
		s = strconv.FormatFloat(v, 'g', -1, 64)
	} else {
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	if t.unit != "" {
		s += " " + t.unit
	}
	return s
}
