package rules

// Carry takes over the alarm and fault state of the tags that a config
// reload left unchanged, so that a reload neither clears an active alarm
// nor raises it again, and an acknowledgement, a latch or a shelving
// survives it. keep says which tags are unchanged (same tag config, same
// device, same comm_loss_after); every other tag of e starts fresh, as at
// a start. Tags of old that e does not have are dropped without an event:
// the config_changed event says the config changed.
//
// A flood going on is carried too (carryFloods): its held events are
// still published.
//
// Carry must be called before e is used, on the goroutine that owned old;
// old must not be used afterwards (its alarms are shared, not copied).
func (e *Engine) Carry(old *Engine, keep func(tag string) bool) {
	if old == nil {
		return
	}
	e.carryComm(old)
	e.carryFloods(old)
	for name, ni := range e.index {
		oi, ok := old.index[name]
		if !ok || !keep(name) {
			continue
		}
		nt, ot := &e.tags[ni], old.tags[oi]
		if len(nt.levels) != len(ot.levels) {
			// The redundant instrument of a deviation alarm came or went
			// with the reload: the levels differ, so start afresh.
			continue
		}
		// Indexes are the new engine's: the deviation partner's (whose own
		// state is carried or not on its own) and the device's, which
		// moves when devices before it came or went.
		ot.partner, ot.dev = nt.partner, nt.dev
		*nt = ot
	}
	e.shelved = 0
	for i := range e.tags {
		t := &e.tags[i]
		if !t.faultAlarm.shelvedUntil.IsZero() {
			e.shelved++
		}
		for j := range t.levels {
			if !t.levels[j].shelvedUntil.IsZero() {
				e.shelved++
			}
		}
	}
}
