package rules

import (
	"time"

	"hazgate/internal/config"
)

// State is where an alarm is in the ISA-18.2 / IEC 62682 state machine.
//
//	normal ──raise──► active_unacked ──ack──► active_acked ──return──► normal
//	                      │   ▲
//	               return │   │ raise
//	                      ▼   │
//	               returned_unacked ──ack──► normal
//
// A latching alarm does not take the return edge from active_unacked: it
// stays there (with Condition false) until acknowledged, and then goes
// straight to normal.
type State uint8

const (
	Normal State = iota
	ActiveUnacked
	ActiveAcked
	ReturnedUnacked
)

func (s State) String() string {
	switch s {
	case Normal:
		return "normal"
	case ActiveUnacked:
		return "active_unacked"
	case ActiveAcked:
		return "active_acked"
	case ReturnedUnacked:
		return "returned_unacked"
	}
	return "state?"
}

// alarm is the state machine and priority of one alarm.
type alarm struct {
	state    State
	latch    bool
	colour   string
	priority int // 1 (red) .. 4 (blue)
	ackedBy  string
	ackedAt  time.Time

	// shelving (shelve.go); zero shelvedUntil = not shelved
	shelvedUntil time.Time
	shelvedBy    string
	shelveReason string

	counted time.Time // last raise counted towards a flood (flood.go)
}

func newAlarm(colour string, latch bool) alarm {
	a := alarm{latch: latch, colour: colour, priority: 4}
	for i, c := range config.Colours {
		if c == colour {
			a.priority = i + 1
		}
	}
	return a
}

// raise moves the alarm on when its condition becomes true. It reports
// whether the platform must be told (false when a latched alarm whose
// condition had returned comes back: it never stopped being announced).
func (a *alarm) raise() bool {
	if a.state == ActiveUnacked {
		return false
	}
	a.state = ActiveUnacked
	a.ackedBy, a.ackedAt = "", time.Time{}
	return true
}

// clear moves the alarm on when its condition returns to normal. It
// reports whether the platform must be told.
func (a *alarm) clear() bool {
	switch a.state {
	case ActiveAcked:
		a.state = Normal
		return true
	case ActiveUnacked:
		if a.latch {
			return false
		}
		a.state = ReturnedUnacked
		return true
	}
	return false
}

// ack acknowledges the alarm, whose condition is cond now. It reports
// whether there was anything to acknowledge and whether the alarm is now
// back to normal after a latched return (the platform then also needs a
// clear).
func (a *alarm) ack(cond bool, who string, at time.Time) (acked, cleared bool) {
	switch a.state {
	case ActiveUnacked:
		a.ackedBy, a.ackedAt = who, at
		if cond {
			a.state = ActiveAcked
			return true, false
		}
		a.state = Normal
		return true, true
	case ReturnedUnacked:
		a.ackedBy, a.ackedAt = who, at
		a.state = Normal
		return true, false
	}
	return false, false
}

// Default colours (docs/alarms.md): the outer limits and the gas second
// alarm red, the inner limits and the gas first alarm orange, fault-like
// alarms (rate, deviation, sensor fault) yellow.
func colourOf(p *config.AlarmPriority, level string) string {
	var set string
	if p != nil {
		switch level {
		case "hh":
			set = p.HH
		case "h":
			set = p.H
		case "l":
			set = p.L
		case "ll":
			set = p.LL
		case LevelRate:
			set = p.RateOfChange
		case LevelDeviation:
			set = p.Deviation
		case LevelFault:
			set = p.Fault
		}
	}
	if set != "" {
		return set
	}
	switch level {
	case "hh", "ll":
		return config.ColourRed
	case "h", "l":
		return config.ColourOrange
	}
	return config.ColourYellow
}
