package interlock

// Carry takes over, from the engine of the config before a reload, the
// state of the interlocks that the reload left unchanged (keep says which:
// same condition, actions, delays and policy): a tripped interlock stays
// tripped until an operator resets it, a bypass keeps its expiry, and a
// pending on-delay goes on. The last sample of every input tag is taken
// over too (with the new engine's staleness limit), so an unchanged
// interlock is judged at once rather than after a new start-up grace.
// Interlocks that are new or changed start as at a start; a tag that no
// interlock read before gets a start-up grace from the reload.
//
// Carry must be called before e is used, on the goroutine that owned old;
// old must not be used afterwards.
func (e *Engine) Carry(old *Engine, keep func(name string) bool) {
	if old == nil {
		return
	}
	for tag, ns := range e.slot {
		n := &e.inputs[ns]
		if os, ok := old.slot[tag]; ok {
			o := old.inputs[os]
			n.v, n.good, n.at = o.v, o.good, o.at
		} else {
			// No interlock read this tag before: it has not been seen,
			// and must not count as bad before a start-up grace.
			n.watchedFrom = old.now
		}
	}
	e.start, e.now = old.start, old.now
	for i := range e.ils {
		il := &e.ils[i]
		oi, ok := old.byName[il.name]
		if !ok || !keep(il.name) {
			continue
		}
		o := &old.ils[oi]
		il.cond, il.pending, il.pendingSince = o.cond, o.pending, o.pendingSince
		il.tripped, il.trippedAt, il.firstOut = o.tripped, o.trippedAt, o.firstOut
		il.bypassed, il.bypassUntil, il.bypassWho, il.bypassReason = o.bypassed, o.bypassUntil, o.bypassWho, o.bypassReason
		il.failed = append([]string(nil), o.failed...)
		il.ready = o.ready
	}
}
