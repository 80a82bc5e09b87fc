// Package interlock runs the gateway's local interlocks: conditions over
// tag values (rules/interlock/cond) that, once they have held for their
// on-delay, write outputs through drivers.Writer, stay tripped until an
// operator resets them (refused while the condition still holds), and can
// be bypassed for a limited, reported time.
//
// The Engine decides; the Actuator (actuator.go) writes. The Engine runs
// on the pipeline's goroutine and never waits for a device: it returns
// Commands, which the pipeline hands to the Actuator's queues.
//
// Like the alarm engine, the Engine takes all time from its callers
// (sample times, Tick's now, the at of operator requests), so tests need
// no sleeps, and it does not allocate unless something changes.
//
// The gateway is a monitoring and supplementary interlock device, not a
// certified safety instrumented system (IEC 61511): see docs/alarms.md.
package interlock

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules/interlock/cond"
)

// Errors of operator requests.
var (
	ErrUnknown        = errors.New("unknown interlock")
	ErrNotTripped     = errors.New("interlock is not tripped")
	ErrConditionHolds = errors.New("reset refused: the trip condition still holds")
	ErrBypass         = errors.New("bypass refused")
	ErrNotBypassed    = errors.New("interlock is not bypassed")
)

// Command is one output an interlock asks to be written.
type Command struct {
	Interlock string
	Tag       string
	Value     float64
	// Cause is the time of the sample (or tick) at which the trip was
	// decided: the Actuator measures condition-to-write latency from it.
	Cause time.Time
}

// Status is one interlock as the status page and the platform show it.
type Status struct {
	Name         string
	Description  string
	Condition    bool // the condition holds now
	Tripped      bool
	TrippedAt    time.Time
	FirstOut     bool // the first of the interlocks that tripped together
	Bypassed     bool
	BypassUntil  time.Time
	BypassWho    string
	BypassReason string
	// FailedOutputs lists the outputs whose last write or read-back failed
	// (an alarm until a later write of the same output succeeds).
	FailedOutputs []string
}

// input is the last sample of one tag an interlock reads.
type input struct {
	v          float64
	good       bool
	at         time.Time
	staleAfter time.Duration
	// watchedFrom is when the engine began to need this input, if later
	// than its start: a reload that brings a tag no interlock read before
	// gives it the same grace as a start (Carry).
	watchedFrom time.Time
}

type ilState struct {
	name, desc string
	src        string
	expr       *cond.Expr
	slots      []int32 // expr.Tags[i] -> Engine.inputs slot
	actions    []config.Action
	onDelay    time.Duration
	bypassMax  time.Duration

	e *Engine // for Input

	cond         bool
	pending      bool
	pendingSince time.Time
	tripped      bool
	trippedAt    time.Time
	firstOut     bool

	bypassed     bool
	bypassUntil  time.Time
	bypassWho    string
	bypassReason string

	failed []string // outputs whose last write failed

	dirty bool
	ready bool // every input has had a sample, or the start-up grace is over
}

// Input implements cond.Inputs: a tag is good when its last sample was
// Good and is not older than its device's comm_loss_after.
func (il *ilState) Input(i int) (float64, bool) {
	in := &il.e.inputs[il.slots[i]]
	if !in.good || il.e.now.Sub(in.at) >= in.staleAfter { // never sampled: in.at is zero
		return in.v, false
	}
	return in.v, true
}

// Engine holds the state of every interlock. It is not safe for concurrent
// use: the pipeline owns it.
type Engine struct {
	slot    map[string]int32   // tag -> inputs index
	readers map[string][]int32 // tag -> interlocks reading it
	inputs  []input
	ils     []ilState
	byName  map[string]int
	start   time.Time // first time seen, for the start-up grace
	now     time.Time
	dirty   []int32
	trips   []int32
}

// New compiles every interlock of cfg (validated by config.Load, which
// reports condition errors with their line; New returns the first error it
// meets for a config that was not validated).
func New(cfg *config.Config) (*Engine, error) {
	e := &Engine{slot: map[string]int32{}, readers: map[string][]int32{}, byName: map[string]int{}}
	if cfg == nil {
		return e, nil
	}
	stale := map[string]time.Duration{}
	for _, d := range cfg.Devices {
		after := time.Duration(d.CommLossAfter)
		if after <= 0 {
			after = time.Duration(config.DefaultCommLossAfter)
		}
		for _, t := range d.Tags {
			stale[t.Name] = after
		}
	}
	e.ils = make([]ilState, len(cfg.Interlocks))
	for i, c := range cfg.Interlocks {
		x, err := cond.Parse(c.Condition)
		if err != nil {
			return nil, fmt.Errorf("interlock %s: condition %q: %w", c.Name, c.Condition, err)
		}
		x.SetHoldOnBad(c.BadQuality == config.BadHold)
		il := &e.ils[i]
		*il = ilState{name: c.Name, desc: c.Description, src: c.Condition, expr: x, actions: c.Actions,
			onDelay: time.Duration(c.OnDelay), bypassMax: time.Duration(c.BypassMax), e: e}
		if il.bypassMax <= 0 {
			il.bypassMax = time.Duration(config.DefaultBypassMax)
		}
		for _, tag := range x.Tags {
			after, ok := stale[tag]
			if !ok {
				return nil, fmt.Errorf("interlock %s: condition reads %q, which is not a tag", c.Name, tag)
			}
			s, ok := e.slot[tag]
			if !ok {
				s = int32(len(e.inputs))
				e.slot[tag] = s
				e.inputs = append(e.inputs, input{staleAfter: after})
			}
			il.slots = append(il.slots, s)
			e.readers[tag] = append(e.readers[tag], int32(i))
		}
		e.byName[c.Name] = i
	}
	return e, nil
}

// Process takes samples in, evaluates the interlocks that read them at
// the time of the newest sample, and appends events and commands.
func (e *Engine) Process(samples []model.Sample, events []model.Event, cmds []Command) ([]model.Event, []Command) {
	for i := range samples {
		s := &samples[i]
		slot, ok := e.slot[s.Tag]
		if !ok {
			continue
		}
		in := &e.inputs[slot]
		if s.Time.Before(in.at) {
			continue // an older sample than we have: ignore
		}
		in.v, in.good, in.at = s.Value, s.Quality == model.Good && s.Value == s.Value, s.Time
		if s.Time.After(e.now) {
			e.now = s.Time
		}
		for _, r := range e.readers[s.Tag] {
			if il := &e.ils[r]; !il.dirty {
				il.dirty = true
				e.dirty = append(e.dirty, r)
			}
		}
	}
	if len(e.dirty) == 0 {
		return events, cmds
	}
	// Config order, so that first-out among ties is the first defined.
	slices.Sort(e.dirty)
	e.trips = e.trips[:0]
	for _, r := range e.dirty {
		e.ils[r].dirty = false
		e.evaluate(r)
	}
	e.dirty = e.dirty[:0]
	return e.trip(events, cmds)
}

// Tick completes on-delays, ends expired bypasses and notices inputs that
// went stale, at now.
func (e *Engine) Tick(now time.Time, events []model.Event, cmds []Command) ([]model.Event, []Command) {
	if now.After(e.now) {
		e.now = now
	}
	e.trips = e.trips[:0]
	for i := range e.ils {
		il := &e.ils[i]
		if il.bypassed && !e.now.Before(il.bypassUntil) {
			il.bypassed = false
			until := il.bypassUntil
			ev := il.event(model.BypassExpired, e.now, fmt.Sprintf("%s bypass expired (set by %s: %s); the interlock protects again", il.name, il.bypassWho, il.bypassReason))
			ev.Until, ev.Who, ev.Reason = &until, il.bypassWho, il.bypassReason
			events = append(events, ev)
		}
		e.evaluate(int32(i))
	}
	return e.trip(events, cmds)
}

// evaluate updates one interlock's condition and on-delay at e.now and
// queues it in e.trips when it must trip.
func (e *Engine) evaluate(r int32) {
	il := &e.ils[r]
	if !il.ready && !e.ready(il) {
		return
	}
	il.cond = il.expr.Eval(il)
	if !il.cond {
		il.pending = false
		return
	}
	if il.tripped {
		return
	}
	if !il.pending {
		il.pending, il.pendingSince = true, e.now
	}
	if e.now.Sub(il.pendingSince) >= il.onDelay && !il.bypassed {
		e.trips = append(e.trips, r)
	}
}

// ready says whether an interlock may be judged: a gateway that has just
// started has not polled its inputs yet, and "not yet read" must not trip
// every interlock with the trip policy. An input never sampled becomes
// bad once its device's comm_loss_after has passed since the engine first
// saw time, as for a tag that went silent.
func (e *Engine) ready(il *ilState) bool {
	if e.start.IsZero() {
		e.start = e.now
	}
	for _, s := range il.slots {
		in := &e.inputs[s]
		from := e.start
		if in.watchedFrom.After(from) {
			from = in.watchedFrom
		}
		if in.at.IsZero() && e.now.Sub(from) < in.staleAfter {
			return false
		}
	}
	il.ready = true
	return true
}

// trip trips the interlocks queued in e.trips. The first out is the one
// whose condition began first (config order among equals).
func (e *Engine) trip(events []model.Event, cmds []Command) ([]model.Event, []Command) {
	if len(e.trips) == 0 {
		return events, cmds
	}
	slices.SortStableFunc(e.trips, func(a, b int32) int {
		return e.ils[a].pendingSince.Compare(e.ils[b].pendingSince)
	})
	for k, r := range e.trips {
		il := &e.ils[r]
		il.tripped, il.trippedAt, il.pending, il.firstOut = true, e.now, false, k == 0 && len(e.trips) > 1
		values := make(map[string]float64, len(il.expr.Tags))
		var b strings.Builder
		for i, tag := range il.expr.Tags {
			v, good := il.Input(i)
			values[tag] = v
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tag + " = " + strconv.FormatFloat(v, 'g', 6, 64))
			if !good {
				b.WriteString(" (bad)")
			}
		}
		msg := il.name + " tripped: " + il.src + " (" + b.String() + ")"
		if il.firstOut {
			msg += "; first out of " + strconv.Itoa(len(e.trips))
		} else if len(e.trips) > 1 {
			msg += "; tripped with first out " + e.ils[e.trips[0]].name
		}
		ev := il.event(model.InterlockTripped, e.now, msg)
		ev.Values = values
		ev.Colour, ev.Priority = config.ColourRed, 1
		if il.firstOut {
			ev.Reason = "first out"
		}
		events = append(events, ev)
		for _, a := range il.actions {
			if a.Value != nil {
				cmds = append(cmds, Command{Interlock: il.name, Tag: a.Tag, Value: *a.Value, Cause: e.now})
			}
		}
	}
	e.trips = e.trips[:0]
	return events, cmds
}

func (il *ilState) event(kind model.EventKind, at time.Time, msg string) model.Event {
	return model.Event{Kind: kind, Time: at.UTC(), Interlock: il.name, Message: msg}
}

func (e *Engine) find(name string) (*ilState, error) {
	i, ok := e.byName[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrUnknown)
	}
	return &e.ils[i], nil
}

// Reset resets a tripped interlock on behalf of who. It is refused while
// the condition still holds (evaluated at at, bad inputs per the
// interlock's policy).
func (e *Engine) Reset(name, who string, at time.Time) ([]model.Event, error) {
	il, err := e.find(name)
	if err != nil {
		return nil, err
	}
	if !il.tripped {
		return nil, fmt.Errorf("%s: %w", name, ErrNotTripped)
	}
	if at.After(e.now) {
		e.now = at
	}
	if il.cond = il.expr.Eval(il); il.cond {
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrConditionHolds, il.src)
	}
	il.tripped, il.firstOut, il.pending = false, false, false
	ev := il.event(model.InterlockReset, at, name+" reset by "+who)
	ev.Who = who
	return []model.Event{ev}, nil
}

// Bypass suppresses an interlock's trips until until, on behalf of who and
// for reason (both required). The bypass may last at most the interlock's
// bypass_max. A bypass does not undo a trip that already happened.
func (e *Engine) Bypass(name, who, reason string, until, at time.Time) ([]model.Event, error) {
	il, err := e.find(name)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(who) == "":
		return nil, fmt.Errorf("%s: %w: say who bypasses it", name, ErrBypass)
	case strings.TrimSpace(reason) == "":
		return nil, fmt.Errorf("%s: %w: a reason is required", name, ErrBypass)
	case !until.After(at):
		return nil, fmt.Errorf("%s: %w: expiry %s is not in the future", name, ErrBypass, until.UTC().Format(time.RFC3339))
	case until.Sub(at) > il.bypassMax:
		return nil, fmt.Errorf("%s: %w: %s is longer than bypass_max %s", name, ErrBypass, until.Sub(at).Round(time.Second), il.bypassMax)
	}
	il.bypassed, il.bypassUntil, il.bypassWho, il.bypassReason = true, until, who, reason
	ev := il.event(model.BypassOn, at, fmt.Sprintf("%s bypassed by %s until %s: %s", name, who, until.UTC().Format(time.RFC3339), reason))
	u := until
	ev.Until, ev.Who, ev.Reason = &u, who, reason
	ev.Colour, ev.Priority = config.ColourYellow, 3
	return []model.Event{ev}, nil
}

// Unbypass ends a bypass before its expiry.
func (e *Engine) Unbypass(name, who string, at time.Time) ([]model.Event, error) {
	il, err := e.find(name)
	if err != nil {
		return nil, err
	}
	if !il.bypassed {
		return nil, fmt.Errorf("%s: %w", name, ErrNotBypassed)
	}
	il.bypassed = false
	ev := il.event(model.BypassOff, at, fmt.Sprintf("%s bypass removed by %s", name, who))
	ev.Who, ev.Reason = who, il.bypassReason
	return []model.Event{ev}, nil
}

// NoteAction records the outcome of an output write (an Actuator event)
// in the status of its interlock.
func (e *Engine) NoteAction(ev model.Event) {
	i, ok := e.byName[ev.Interlock]
	if !ok || (ev.Kind != model.InterlockAction && ev.Kind != model.InterlockActionFailed) {
		return
	}
	il := &e.ils[i]
	il.failed = slices.DeleteFunc(il.failed, func(t string) bool { return t == ev.Tag })
	if ev.Kind == model.InterlockActionFailed {
		il.failed = append(il.failed, ev.Tag)
	}
}

// Status lists every interlock in config order.
func (e *Engine) Status() []Status {
	out := make([]Status, len(e.ils))
	for i := range e.ils {
		il := &e.ils[i]
		out[i] = Status{Name: il.name, Description: il.desc, Condition: il.cond, Tripped: il.tripped, TrippedAt: il.trippedAt,
			FirstOut: il.firstOut, Bypassed: il.bypassed, BypassUntil: il.bypassUntil, BypassWho: il.bypassWho, BypassReason: il.bypassReason,
			FailedOutputs: slices.Clone(il.failed)}
	}
	return out
}
