package rules

import (
	"fmt"
	"math"
	"time"

	"hazgate/internal/model"
)

// deviceComm is one device's communication as the platform sees it
// (docs/uplink.md §3.5): comm_lost once none of its tags has had a good
// sample for comm_loss_after, comm_restored with the first good sample
// after that. One event per device, on top of the per-tag faults, so a
// dispatcher sees "PLC-1 is not answering" once rather than forty tags.
type deviceComm struct {
	name  string
	after time.Duration

	since    time.Time // start of the current silence: last good sample, or first tick
	lost     bool
	reason   string // of the last bad sample
	lastGood time.Time
}

// sample notes one sample of the device.
func (d *deviceComm) sample(s *model.Sample, out []model.Event) []model.Event {
	if s.Quality != model.Good || math.IsNaN(s.Value) {
		if s.Reason != "" {
			d.reason = s.Reason
		}
		return out
	}
	if s.Time.After(d.lastGood) {
		d.lastGood = s.Time
	}
	d.since = s.Time
	if !d.lost {
		return out
	}
	d.lost = false
	return append(out, model.Event{
		Kind: model.CommRestored, Time: s.Time.UTC(), Device: d.name,
		Message: fmt.Sprintf("%s answers again", d.name),
	})
}

// commTick raises comm_lost for devices silent for their comm_loss_after.
func (e *Engine) commTick(now time.Time, out []model.Event) []model.Event {
	for i := range e.comm {
		d := &e.comm[i]
		if d.since.IsZero() {
			d.since = now // never heard from: count from the first tick
			continue
		}
		if d.lost || now.Sub(d.since) < d.after {
			continue
		}
		d.lost = true
		reason := d.reason
		if reason == "" {
			reason = "no sample"
		}
		msg := fmt.Sprintf("%s not answering for %v: %s", d.name, now.Sub(d.since).Round(time.Second), reason)
		if d.lastGood.IsZero() {
			msg = fmt.Sprintf("%s has not answered since the gateway started: %s", d.name, reason)
		}
		out = append(out, model.Event{Kind: model.CommLost, Time: now.UTC(), Device: d.name, Reason: reason, Message: msg})
	}
	return out
}

// carryComm keeps the communication state of devices a reload kept, so a
// reload neither repeats a comm_lost nor loses the comm_restored to come.
func (e *Engine) carryComm(old *Engine) {
	byName := make(map[string]deviceComm, len(old.comm))
	for _, d := range old.comm {
		byName[d.name] = d
	}
	for i := range e.comm {
		if d, ok := byName[e.comm[i].name]; ok {
			d.after = e.comm[i].after
			e.comm[i] = d
		}
	}
}
