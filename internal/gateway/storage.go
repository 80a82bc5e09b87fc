package gateway

import (
	"fmt"
	"time"

	"hazgate/internal/model"
)

// storageTrouble follows a spell during which the buffer could not take
// what the pipeline evaluated: commits failing (a file system gone
// read-only, an I/O error, a full disk) or so slow that the records held
// in memory passed their bound. The gateway's decision (docs/uplink.md
// §3.5, docs/operator-guide.md): acquisition, rules and interlocks never
// stop for the disk; records wait in memory and are retried; beyond the
// bound the oldest are dropped and counted; the platform learns all of it
// from a storage_fault and a storage_restored event once the disk is back.
type storageTrouble struct {
	since   time.Time // first failure of the spell; zero when the disk is fine
	retryAt time.Time // no commit before this
	err     error     // the latest failure
	fails   int

	droppedSamples            uint64
	droppedEvents             uint64
	firstDropped, lastDropped time.Time // acquisition times of the dropped samples
}

// failed notes a failed commit at now and returns the storage_fault event
// to record when it is the first failure of a spell.
func (t *storageTrouble) failed(now time.Time, err error) (model.Event, bool) {
	t.err = err
	t.fails++
	t.retryAt = now.Add(retryCommitEvery)
	if !t.since.IsZero() {
		return model.Event{}, false
	}
	t.since = now
	return model.Event{
		Kind: model.StorageFault, Time: now.UTC(), Reason: err.Error(),
		Message: fmt.Sprintf("the buffer cannot be written (%v); rules and interlocks keep running, records are held in memory and retried every %v", err, retryCommitEvery),
	}, true
}

// dropSamples counts samples dropped from memory, oldest first.
func (t *storageTrouble) dropSamples(s []model.Sample) {
	if len(s) == 0 {
		return
	}
	if t.droppedSamples == 0 {
		t.firstDropped = s[0].Time
	}
	t.lastDropped = s[len(s)-1].Time
	t.droppedSamples += uint64(len(s))
	if t.since.IsZero() {
		// Not a failure but a disk too slow for acquisition: a spell all
		// the same, reported when it ends.
		t.since = time.Now()
	}
}

// recovered notes a successful commit at now and returns the
// storage_restored event when it ends a spell, then forgets the spell.
func (t *storageTrouble) recovered(now time.Time) (model.Event, bool) {
	if t.since.IsZero() {
		return model.Event{}, false
	}
	msg := fmt.Sprintf("the buffer is writable again after %v (%d failed commits)", now.Sub(t.since).Round(time.Millisecond), t.fails)
	if t.droppedSamples > 0 || t.droppedEvents > 0 {
		msg += fmt.Sprintf("; lost meanwhile: %d samples", t.droppedSamples)
		if t.droppedSamples > 0 {
			msg += fmt.Sprintf(" acquired %s to %s", t.firstDropped.UTC().Format(time.RFC3339), t.lastDropped.UTC().Format(time.RFC3339))
		}
		msg += fmt.Sprintf(" and %d events, more than memory holds", t.droppedEvents)
	} else {
		msg += "; nothing was lost"
	}
	reason := ""
	if t.err != nil {
		reason = t.err.Error()
	}
	*t = storageTrouble{}
	return model.Event{Kind: model.StorageRestored, Time: now.UTC(), Reason: reason, Message: msg}, true
}
