package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"hazgate/internal/model"
)

// MaxShelve is the longest an alarm may be shelved: one shift.
const MaxShelve = 12 * time.Hour

// ErrShelve is returned for a shelving request that is refused.
var ErrShelve = errors.New("shelving refused")

// ErrUnknownLevel is returned for a level the tag does not have.
var ErrUnknownLevel = errors.New("no such alarm level on this tag")

// alarmOf finds the alarm of tag at level (hh, h, l, ll, roc, dev, fault).
func (e *Engine) alarmOf(tag, level string) (*tagState, *alarm, string, error) {
	idx, ok := e.index[tag]
	if !ok {
		return nil, nil, "", fmt.Errorf("%s: %w", tag, ErrUnknownTag)
	}
	t := &e.tags[idx]
	if level == LevelFault {
		return t, &t.faultAlarm, "fault", nil
	}
	for i := range t.levels {
		if t.levels[i].name == level {
			return t, t.levels[i].alarm, t.levels[i].label + " alarm", nil
		}
	}
	return nil, nil, "", fmt.Errorf("%s %s: %w", tag, level, ErrUnknownLevel)
}

// Shelve takes one alarm off the operators' list until until (at most
// MaxShelve), on behalf of who and for reason (both required). Honest
// suppression: the alarm keeps its state machine, its events are still
// recorded and published (their message says "shelved"), Active still
// lists it with Shelved set, and the shelving itself is reported when set,
// removed and when it expires.
func (e *Engine) Shelve(tag, level, who, reason string, until, at time.Time) ([]model.Event, error) {
	t, a, label, err := e.alarmOf(tag, level)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(who) == "":
		return nil, fmt.Errorf("%s %s: %w: say who shelves it", tag, level, ErrShelve)
	case strings.TrimSpace(reason) == "":
		return nil, fmt.Errorf("%s %s: %w: a reason is required", tag, level, ErrShelve)
	case !until.After(at):
		return nil, fmt.Errorf("%s %s: %w: expiry is not in the future", tag, level, ErrShelve)
	case until.Sub(at) > MaxShelve:
		return nil, fmt.Errorf("%s %s: %w: longer than %s", tag, level, ErrShelve, MaxShelve)
	}
	if a.shelvedUntil.IsZero() {
		e.shelved++
	}
	a.shelvedUntil, a.shelvedBy, a.shelveReason = until, who, reason
	ev := t.event(model.AlarmShelved, level, a, at,
		fmt.Sprintf("%s %s shelved by %s until %s: %s", t.prefix, label, who, until.UTC().Format(time.RFC3339), reason), who)
	u := until
	ev.Until, ev.Reason = &u, reason
	return []model.Event{ev}, nil
}

// Unshelve puts a shelved alarm back on the list.
func (e *Engine) Unshelve(tag, level, who string, at time.Time) ([]model.Event, error) {
	t, a, label, err := e.alarmOf(tag, level)
	if err != nil {
		return nil, err
	}
	if a.shelvedUntil.IsZero() {
		return nil, fmt.Errorf("%s %s: %w: not shelved", tag, level, ErrShelve)
	}
	reason := a.shelveReason
	a.unshelve()
	e.shelved--
	ev := t.event(model.AlarmUnshelved, level, a, at, t.prefix+" "+label+" unshelved by "+who, who)
	ev.Reason = reason
	return []model.Event{ev}, nil
}

func (a *alarm) unshelve() { a.shelvedUntil, a.shelvedBy, a.shelveReason = time.Time{}, "", "" }

// shelveTick ends the shelvings that expired at now.
func (e *Engine) shelveTick(now time.Time, out []model.Event) []model.Event {
	if e.shelved == 0 {
		return out
	}
	expire := func(t *tagState, level, label string, a *alarm) {
		if a.shelvedUntil.IsZero() || now.Before(a.shelvedUntil) {
			return
		}
		until, who, reason := a.shelvedUntil, a.shelvedBy, a.shelveReason
		a.unshelve()
		e.shelved--
		ev := t.event(model.ShelveExpired, level, a, now,
			fmt.Sprintf("%s %s shelving by %s expired (%s); the alarm is back on the list", t.prefix, label, who, reason), who)
		ev.Until, ev.Reason = &until, reason
		out = append(out, ev)
	}
	for i := range e.tags {
		t := &e.tags[i]
		expire(t, LevelFault, "fault", &t.faultAlarm)
		for j := range t.levels {
			expire(t, t.levels[j].name, t.levels[j].label+" alarm", t.levels[j].alarm)
		}
	}
	return out
}
