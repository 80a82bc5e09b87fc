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
//   - A fault is raised once a tag has given no trustworthy value (its
//     samples Bad, Uncertain or NaN) continuously for its device's
//     CommLossAfter (measured from the first such sample of the run), or
//     once no sample at all arrived for CommLossAfter (stale, seen by
//     Tick). Only a Good sample clears a fault or ends the run.
//   - A tag is one fault at a time: stale, bad quality and frozen share it.
//     A Bad sample whose reason is a sensor fault (NAMUR NE43 signal out of
//     band, see drivers.Scale) raises the fault at once: it is a broken
//     instrument, not a slow network. A frozen fault clears only when the
//     value moves; while it is active, the tag's samples are marked Bad in
//     place, so the buffer and the platform see them as untrustworthy.
//   - Every alarm and fault has the ISA-18.2 / IEC 62682 state machine of
//     alarm.go: normal, active-unacknowledged, active-acknowledged,
//     returned-unacknowledged. A latching alarm stays active-unacknowledged
//     after the process returned, until an operator acknowledges it.
package rules

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Levels of an ActiveAlarm beyond the thresholds hh, h, l, ll.
const (
	LevelFault     = "fault" // sensor or communication fault
	LevelRate      = "roc"   // rate of change
	LevelDeviation = "dev"   // disagreement with the redundant instrument
)

// defaultCommLossAfter applies when a device's CommLossAfter is zero (the
// config loader normally fills the same default in).
const defaultCommLossAfter = 10 * time.Second

// Errors of Ack.
var (
	ErrUnknownTag   = errors.New("unknown tag")
	ErrNothingToAck = errors.New("no unacknowledged alarm")
)

// ActiveAlarm is one alarm or fault that is not in the normal state.
type ActiveAlarm struct {
	Tag       string
	Device    string
	Level     string    // hh, h, l, ll, roc, dev, or LevelFault
	State     State     //
	Condition bool      // the process is still in alarm (false: returned, or latched)
	Colour    string    // red, orange, yellow, blue
	Since     time.Time // when it was raised
	Value     float64   // the value that raised it (0 for a fault)
	Limit     float64   // the threshold (0 for a fault)
	Reason    string    // for a fault: why
	AckedBy   string    //
	AckedAt   time.Time //

	ShelvedUntil time.Time // non-zero while shelved (off the operators' list)
	ShelvedBy    string

	Priority int    // 1 (red) .. 4 (blue)
	Gas      string // combustible or toxic for a gas preset tag, else ""
}

// Engine holds the alarm and fault state of every configured tag.
//
// An Engine is not safe for concurrent use: the pipeline owns it and calls
// Process, Tick, Ack and Active from one goroutine.
type Engine struct {
	index map[string]int32
	tags  []tagState

	// alarm floods per device (flood.go)
	floods   []flood
	floodOf  map[string]int // device -> floods index
	flooding int            // floods active
	// carriedOut are events a reload could not hand to a flood of this
	// engine (the device went); the next Tick publishes them.
	carriedOut []model.Event

	shelved int // alarms shelved (shelve.go)

	comm []deviceComm // per device, same index as floods (comm.go)
}

// direction of a threshold.
type direction uint8

const (
	high direction = iota // value >= limit raises
	low                   // value <= limit raises
)

// Inputs a level compares with its limit.
const (
	inValue     = iota // the sample's value
	inRate             // |rate of change| per minute
	inDeviation        // |value - redundant value|
	nInputs
)

// levelState is one alarm level of one tag: an independent alarm.
type levelState struct {
	*alarm        // cold: touched only on a change, kept out of the hot loop's cache lines
	name   string // hh, h, l, ll, roc, dev
	label  string // HH, H, ... or "first"/"second" for gas
	input  uint8  // inValue, inRate, inDeviation
	dir    direction
	limit  float64
	clear  float64 // limit -/+ deadband: beyond it the alarm may clear

	onDelay, offDelay time.Duration

	active bool // the condition, after delays and deadband
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

	commLossAfter time.Duration
	staleReason   string

	// levels in raise order: h, hh, l, ll, roc, dev (only the configured ones).
	levels []levelState

	// last input of each kind, for Tick completing a delay
	in     [nInputs]float64
	haveIn [nInputs]bool

	lastValue  float64   // last Good value
	haveValue  bool      //
	lastGoodAt time.Time // its time
	lastGood   bool      // the last sample was Good
	lastSeen   time.Time // time of the last sample of any quality; zero = never

	badRun     bool      // the samples since badSince have all been Bad
	badSince   time.Time //
	lastReason string    // reason of the last Bad sample

	fault       bool // the fault condition
	faultAlarm  alarm
	faultSince  time.Time
	faultReason string
	faultFrozen bool // the fault is a frozen value

	// rate of change over at least window: ref is the older point, mid
	// the newer one; mid becomes ref once it is window old.
	rateWindow       time.Duration
	refV, midV       float64
	refT, midT       time.Time
	haveRef, haveMid bool

	// frozen detection
	frozenAfter  time.Duration
	frozenTol    float64
	frozenV      float64
	frozenSince  time.Time
	frozenRef    bool
	frozenReason string

	partner int32 // index of the redundant instrument, -1 if none
	dev     int32 // index of its device in Engine.comm and Engine.floods
	gas     string
}

// New builds one rule set per tag of cfg.Devices[*].Tags[*]. A tag name
// that appears twice keeps the first definition (the config validator
// rejects duplicates).
func New(cfg *config.Config) *Engine {
	e := &Engine{index: make(map[string]int32), floodOf: map[string]int{}}
	if cfg == nil {
		return e
	}
	// Sized once: a tag's state is large, and growing the slice by
	// doubling would copy 50,000 of them several times at start.
	n := 0
	for _, dev := range cfg.Devices {
		n += len(dev.Tags)
	}
	e.tags = make([]tagState, 0, n)
	partners := make([]string, 0, n)
	for _, dev := range cfg.Devices {
		if _, dup := e.floodOf[dev.Name]; !dup {
			e.floodOf[dev.Name] = len(e.floods)
			f := flood{device: dev.Name}
			limit := DefaultFloodPerMinute
			if dev.AlarmFloodLimit != nil {
				limit = *dev.AlarmFloodLimit
			}
			f.setLimit(limit)
			e.floods = append(e.floods, f)
		}
		commLoss := time.Duration(dev.CommLossAfter)
		if commLoss <= 0 {
			commLoss = defaultCommLossAfter
		}
		if len(e.comm) < len(e.floods) {
			e.comm = append(e.comm, deviceComm{name: dev.Name, after: commLoss})
		}
		devIdx := int32(e.floodOf[dev.Name])
		for _, tag := range dev.Tags {
			if _, dup := e.index[tag.Name]; dup {
				continue
			}
			e.index[tag.Name] = int32(len(e.tags))
			e.tags = append(e.tags, newTagState(dev.Name, commLoss, tag))
			e.tags[len(e.tags)-1].dev = devIdx
			p := ""
			if tag.Alarms != nil && tag.Alarms.Deviation != nil {
				p = tag.Alarms.Deviation.Tag
			}
			partners = append(partners, p)
		}
	}
	for i, p := range partners {
		e.tags[i].partner = -1
		if j, ok := e.index[p]; ok && p != "" && int(j) != i {
			e.tags[i].partner = j
		} else {
			// An unknown partner (the validator rejects it) checks nothing.
			e.tags[i].dropLevel(LevelDeviation)
		}
	}
	return e
}

func (t *tagState) dropLevel(name string) {
	for i := range t.levels {
		if t.levels[i].name == name {
			t.levels = append(t.levels[:i], t.levels[i+1:]...)
			return
		}
	}
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
		partner:       -1,
	}
	if d := tag.Description; d != "" {
		ts.prefix += " " + d
	} else if tag.Kind != "" {
		ts.prefix += " " + tag.Kind
	}
	a := tag.Alarms
	if a == nil {
		ts.faultAlarm = newAlarm(colourOf(nil, LevelFault), false)
		return ts
	}
	ts.faultAlarm = newAlarm(colourOf(a.Priority, LevelFault), false)
	if a.Gas != nil {
		ts.gas = a.Gas.Type
	}
	db := math.Abs(a.Deadband)
	gas := tag.Kind == config.KindGas
	add := func(name, label string, input uint8, dir direction, limit float64, db float64, on, off time.Duration) {
		l := levelState{name: name, label: label, input: input, dir: dir, limit: limit,
			onDelay: on, offDelay: off}
		al := newAlarm(colourOf(a.Priority, name), a.Latch)
		l.alarm = &al
		if dir == high {
			l.clear = limit - db
		} else {
			l.clear = limit + db
		}
		ts.levels = append(ts.levels, l)
	}
	on, off := time.Duration(a.OnDelay), time.Duration(a.OffDelay)
	threshold := func(name, label string, dir direction, limit *float64) {
		if limit != nil {
			add(name, label, inValue, dir, *limit, db, on, off)
		}
	}
	hLabel, hhLabel := "H", "HH"
	if gas {
		// GB/T 50493: 一级报警 (first alarm) and 二级报警 (second alarm).
		hLabel, hhLabel = "first", "second"
	}
	threshold(model.LevelH, hLabel, high, a.H)
	threshold(model.LevelHH, hhLabel, high, a.HH)
	threshold(model.LevelL, "L", low, a.L)
	threshold(model.LevelLL, "LL", low, a.LL)
	if r := a.RateOfChange; r != nil && r.Limit > 0 {
		ts.rateWindow = time.Duration(r.Window)
		if ts.rateWindow <= 0 {
			ts.rateWindow = time.Minute
		}
		add(LevelRate, "rate of change", inRate, high, r.Limit, 0, 0, 0)
	}
	if d := a.Deviation; d != nil && d.Limit > 0 {
		add(LevelDeviation, "deviation from "+d.Tag, inDeviation, high, d.Limit, 0, time.Duration(d.Delay), time.Duration(d.Delay))
	}
	if f := a.Frozen; f != nil && f.After > 0 {
		ts.frozenAfter, ts.frozenTol = time.Duration(f.After), math.Abs(f.Tolerance)
		ts.frozenReason = model.ReasonSensorFault + ": frozen, unchanged for " + ts.frozenAfter.String()
	}
	return ts
}

// Process evaluates samples in order, appends the events they cause to out
// and returns it. Samples of tags that are not configured are ignored.
// Within one sample, clears come before raises, the more severe level
// first for clears (hh before h) and last for raises (h before hh).
//
// A sample of a tag with a frozen-value fault is marked Bad in place.
func (e *Engine) Process(samples []model.Sample, out []model.Event) []model.Event {
	start := len(out)
	for i := range samples {
		s := &samples[i]
		idx, ok := e.index[s.Tag]
		if !ok {
			continue
		}
		t := &e.tags[idx]
		var partner *tagState
		if t.partner >= 0 {
			partner = &e.tags[t.partner]
		}
		out = t.process(s, partner, out)
		out = e.comm[t.dev].sample(s, out)
	}
	return e.summarise(out, start)
}

func (t *tagState) process(s *model.Sample, partner *tagState, out []model.Event) []model.Event {
	if s.Time.After(t.lastSeen) {
		t.lastSeen = s.Time
	}
	good := s.Quality == model.Good && !math.IsNaN(s.Value)
	if good && t.frozenAfter > 0 {
		out = t.checkFrozen(s, out)
		good = s.Quality == model.Good
	}
	t.lastGood = good
	if !good {
		// Neither raise nor clear on a value we cannot trust, and the
		// condition has not held continuously any more.
		for i := range t.levels {
			t.levels[i].pending = false
		}
		// Bad, Uncertain and NaN alike: no trustworthy value. A tag that
		// gives none for CommLossAfter is a fault, or a saturated
		// transmitter reported as Uncertain (OPC UA's
		// EngineeringUnitsExceeded) would show neither alarm nor fault.
		if !t.badRun {
			t.badRun = true
			t.badSince = s.Time
		}
		reason := s.Reason
		switch {
		case s.Quality == model.Good:
			reason = "not a number"
		case reason == "":
			reason = s.Quality.String()
		}
		t.lastReason = reason
		sensor := s.Quality == model.Bad && strings.HasPrefix(s.Reason, model.ReasonSensorFault)
		if !t.fault && (sensor || s.Time.Sub(t.badSince) >= t.commLossAfter) {
			out = t.raiseFault(s.Time, reason, out)
		}
		return out
	}
	t.badRun = false
	if t.fault {
		out = t.clearFault(s, out)
	}
	t.lastValue, t.haveValue, t.lastGoodAt = s.Value, true, s.Time

	t.in[inValue], t.haveIn[inValue] = s.Value, true
	if t.rateWindow > 0 {
		t.rate(s.Value, s.Time)
	}
	if t.partner >= 0 {
		// The partner must be Good and recent, or the difference means nothing.
		if partner != nil && partner.lastGood && !partner.fault && s.Time.Sub(partner.lastGoodAt) < partner.commLossAfter {
			t.in[inDeviation], t.haveIn[inDeviation] = math.Abs(s.Value-partner.lastValue), true
		} else {
			t.haveIn[inDeviation] = false
		}
	}
	return t.evaluate(s.Time, out)
}

// rate updates the rate of change with a Good value.
func (t *tagState) rate(v float64, at time.Time) {
	switch {
	case !t.haveMid:
		t.midV, t.midT, t.haveMid = v, at, true
	case at.Sub(t.midT) >= t.rateWindow:
		t.refV, t.refT, t.haveRef = t.midV, t.midT, true
		t.midV, t.midT = v, at
	}
	if t.haveRef && at.After(t.refT) {
		t.in[inRate] = math.Abs(v-t.refV) / at.Sub(t.refT).Minutes()
		t.haveIn[inRate] = true
	}
}

// checkFrozen follows a Good value: a value that moved by more than the
// tolerance restarts the watch (and clears a frozen fault); one that did
// not for frozenAfter raises the fault. While frozen, the sample is Bad.
func (t *tagState) checkFrozen(s *model.Sample, out []model.Event) []model.Event {
	if !t.frozenRef || math.Abs(s.Value-t.frozenV) > t.frozenTol {
		t.frozenV, t.frozenSince, t.frozenRef = s.Value, s.Time, true
		return out
	}
	if !t.fault && s.Time.Sub(t.frozenSince) >= t.frozenAfter {
		out = t.raiseFault(s.Time, t.frozenReason, out)
		t.faultFrozen = true
	}
	if t.fault && t.faultFrozen {
		s.Quality, s.Reason = model.Bad, t.frozenReason
	}
	return out
}

// evaluate runs the level state machines with the inputs of t.in seen at
// time at.
func (t *tagState) evaluate(at time.Time, out []model.Event) []model.Event {
	// Clears first, most severe first: walk the levels backwards within
	// each direction (ll before l, hh before h).
	for i := len(t.levels) - 1; i >= 0; i-- {
		l := &t.levels[i]
		if !l.active {
			continue
		}
		v := t.in[l.input]
		if !t.haveIn[l.input] || !l.clearCond(v) {
			l.pending = false
			continue
		}
		if !l.pending {
			l.pending, l.pendingSince = true, at
		}
		if at.Sub(l.pendingSince) >= l.offDelay {
			out = t.clearAlarm(l, v, at, out)
		}
	}
	for i := range t.levels {
		l := &t.levels[i]
		if l.active {
			continue
		}
		v := t.in[l.input]
		if !t.haveIn[l.input] || !l.raiseCond(v) {
			l.pending = false
			continue
		}
		if !l.pending {
			l.pending, l.pendingSince = true, at
		}
		if at.Sub(l.pendingSince) >= l.onDelay {
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
	out = append(out, e.carriedOut...)
	e.carriedOut = nil
	start := len(out)
	out = e.tick(now, out)
	out = e.commTick(now, out)
	out = e.shelveTick(now, out)
	out = e.summarise(out, start)
	return e.floodTick(now, out)
}

func (e *Engine) tick(now time.Time, out []model.Event) []model.Event {
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
			if l.active && l.pending && now.Sub(l.pendingSince) >= l.offDelay {
				out = t.clearAlarm(l, t.in[l.input], now, out)
			}
		}
		for j := range t.levels {
			l := &t.levels[j]
			if !l.active && l.pending && now.Sub(l.pendingSince) >= l.onDelay {
				out = t.raiseAlarm(l, t.in[l.input], now, out)
			}
		}
	}
	return out
}

// Ack acknowledges the alarms of tag at level (hh, h, l, ll, roc, dev,
// fault; "" for every level of the tag) on behalf of who, at the time at.
// It returns an alarm_acknowledged event per alarm acknowledged (and an
// alarm_cleared after it for a latched alarm whose process has returned),
// ErrUnknownTag, or ErrNothingToAck when no such alarm awaited an
// acknowledgement.
func (e *Engine) Ack(tag, level, who string, at time.Time) ([]model.Event, error) {
	idx, ok := e.index[tag]
	if !ok {
		return nil, fmt.Errorf("ack %s: %w", tag, ErrUnknownTag)
	}
	t := &e.tags[idx]
	if who == "" {
		who = "unknown"
	}
	var out []model.Event
	if level == "" || level == LevelFault {
		if acked, _ := t.faultAlarm.ack(t.fault, who, at); acked {
			out = append(out, t.event(model.AlarmAcknowledged, LevelFault, &t.faultAlarm, at,
				t.prefix+" fault acknowledged by "+who, who))
			out[len(out)-1].Reason = t.faultReason
		}
	}
	for i := range t.levels {
		l := &t.levels[i]
		if level != "" && level != l.name {
			continue
		}
		acked, cleared := l.ack(l.active, who, at)
		if !acked {
			continue
		}
		out = append(out, t.event(model.AlarmAcknowledged, l.name, l.alarm, at,
			t.prefix+" "+l.label+" alarm acknowledged by "+who, who))
		if cleared {
			out = append(out, t.event(model.AlarmCleared, l.name, l.alarm, at,
				t.prefix+" "+l.label+" alarm cleared: latched alarm acknowledged after the process returned", who))
			out[len(out)-1].Limit = model.Float(l.limit)
			if t.haveIn[l.input] {
				out[len(out)-1].Value = model.Float(t.in[l.input]) // the value that let it clear
			}
		}
	}
	if len(out) == 0 {
		what := tag
		if level != "" {
			what += " " + level
		}
		return nil, fmt.Errorf("ack %s: %w", what, ErrNothingToAck)
	}
	return out, nil
}

// Active lists the alarms and faults that are not normal, in config order
// of their tags; per tag the fault first, then h, hh, l, ll, roc, dev.
func (e *Engine) Active() []ActiveAlarm {
	var out []ActiveAlarm
	for i := range e.tags {
		t := &e.tags[i]
		if t.faultAlarm.state != Normal {
			out = append(out, ActiveAlarm{Tag: t.name, Device: t.device, Level: LevelFault, State: t.faultAlarm.state,
				Condition: t.fault, Colour: t.faultAlarm.colour, Since: t.faultSince, Reason: t.faultReason,
				AckedBy: t.faultAlarm.ackedBy, AckedAt: t.faultAlarm.ackedAt,
				ShelvedUntil: t.faultAlarm.shelvedUntil, ShelvedBy: t.faultAlarm.shelvedBy,
				Priority: t.faultAlarm.priority, Gas: t.gas})
		}
		for j := range t.levels {
			l := &t.levels[j]
			if l.state != Normal {
				out = append(out, ActiveAlarm{Tag: t.name, Device: t.device, Level: l.name, State: l.state,
					Condition: l.active, Colour: l.colour, Since: l.since, Value: l.value, Limit: l.limit,
					AckedBy: l.ackedBy, AckedAt: l.ackedAt, ShelvedUntil: l.shelvedUntil, ShelvedBy: l.shelvedBy,
					Priority: l.priority, Gas: t.gas})
			}
		}
	}
	return out
}

func (t *tagState) event(kind model.EventKind, level string, a *alarm, at time.Time, msg, who string) model.Event {
	if !a.shelvedUntil.IsZero() && (kind == model.AlarmRaised || kind == model.AlarmCleared) {
		msg = "(shelved) " + msg
	}
	return model.Event{
		Kind: kind, Time: at.UTC(), Device: t.device, Tag: t.name, Level: level,
		Colour: a.colour, Priority: a.priority, State: a.state.String(), Who: who, Message: msg,
	}
}

func (t *tagState) raiseAlarm(l *levelState, v float64, at time.Time, out []model.Event) []model.Event {
	l.active, l.pending = true, false
	if !l.raise() {
		return out // latched and still announced
	}
	l.since, l.value = at, v
	op := " >= "
	if l.dir == low {
		op = " <= "
	}
	unit := ""
	if l.input == inRate {
		unit = "/min"
	}
	ev := t.event(model.AlarmRaised, l.name, l.alarm, at,
		t.prefix+" "+l.label+" alarm: "+t.format(v)+unit+op+t.format(l.limit)+unit, "")
	ev.Value, ev.Limit = model.Float(v), model.Float(l.limit)
	return append(out, ev)
}

func (t *tagState) clearAlarm(l *levelState, v float64, at time.Time, out []model.Event) []model.Event {
	l.active, l.pending = false, false
	if !l.alarm.clear() {
		return out // latched: stays announced until acknowledged
	}
	op := " < "
	if l.dir == low {
		op = " > "
	}
	unit := ""
	if l.input == inRate {
		unit = "/min"
	}
	msg := t.prefix + " " + l.label + " alarm cleared: " + t.format(v) + unit + op + t.format(l.clear) + unit
	if l.clear != l.limit {
		msg += " (limit " + t.format(l.limit) + " with deadband)"
	}
	ev := t.event(model.AlarmCleared, l.name, l.alarm, at, msg, "")
	ev.Value, ev.Limit = model.Float(v), model.Float(l.limit)
	return append(out, ev)
}

func (t *tagState) raiseFault(at time.Time, reason string, out []model.Event) []model.Event {
	t.fault, t.faultSince, t.faultReason, t.faultFrozen = true, at, reason, false
	t.faultAlarm.raise()
	// The last value is not to be trusted any more: no on- or off-delay
	// may complete on it (an alarm cleared 30 s after its device went
	// silent was cleared on a value nobody saw hold).
	for i := range t.levels {
		t.levels[i].pending = false
	}
	ev := t.event(model.FaultRaised, "", &t.faultAlarm, at, t.prefix+" fault: "+reason, "")
	ev.Reason = reason
	return append(out, ev)
}

func (t *tagState) clearFault(s *model.Sample, out []model.Event) []model.Event {
	reason := t.faultReason
	t.fault, t.faultReason, t.faultFrozen = false, "", false
	t.faultAlarm.clear()
	ev := t.event(model.FaultCleared, "", &t.faultAlarm, s.Time, t.prefix+" fault cleared: good value "+t.format(s.Value)+" after "+reason, "")
	ev.Reason, ev.Value = reason, model.Float(s.Value)
	return append(out, ev)
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

// SortByPriority orders alarms for an operator: red first, then orange,
// yellow, blue; within a colour toxic gas before combustible gas before
// the rest (GB/T 50493: toxic beats combustible at the same level);
// then unacknowledged before acknowledged, then the oldest first.
func SortByPriority(alarms []ActiveAlarm) {
	gasRank := func(g string) int {
		switch g {
		case config.GasToxic:
			return 0
		case config.GasCombustible:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(alarms, func(a, b ActiveAlarm) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(gasRank(a.Gas), gasRank(b.Gas)); c != 0 {
			return c
		}
		ua, ub := a.State == ActiveUnacked || a.State == ReturnedUnacked, b.State == ActiveUnacked || b.State == ReturnedUnacked
		if ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return a.Since.Compare(b.Since)
	})
}
