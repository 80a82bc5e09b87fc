package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"hazgate/internal/model"
)

// Drop causes, as they appear in model.GapInfo.Cause.
const (
	CauseSizeLimit = "size limit"
	CauseAgeLimit  = "age limit"
	CauseCorrupt   = "corrupt record"
)

// sizeHysteresis: once over MaxBytes, drop down to this share of it, so
// that a full buffer drops in chunks rather than on every commit.
const sizeHysteresis = 0.95

// maxSizeRetries bounds how often one batch is retried after bbolt hit its
// file size ceiling (each retry first frees space by dropping telemetry).
const maxSizeRetries = 3

// gapEventReserve is a generous upper bound on the stored size of one Gap
// event (key, JSON, CRC); a typical one is about 450 bytes.
const gapEventReserve = 768

// writer is the state owned by the writer goroutine.
type writer struct {
	state   state // as committed
	keys    []byte
	scratch metaScratch
}

// batch is the work of one commit.
type batch struct {
	reqs    []*appendReq
	acks    []ackRange
	damaged []recordRef
	// emergencyBytes > 0 lowers the size target to free file space after
	// bbolt refused to grow the file.
	emergencyBytes uint64
}

// run is the writer goroutine: it takes everything pending, commits it in
// one transaction, then answers every waiter.
func (b *Buffer) run() {
	defer close(b.writerDone)
	debug.SetPanicOnFault(true)
	var spare []*appendReq
	for {
		stopping := false
		select {
		case <-b.wake:
		case <-b.stop:
			stopping = true
		}
		b.mu.Lock()
		bt := batch{reqs: b.pending, acks: b.acks, damaged: b.damaged}
		b.pending, b.acks, b.damaged = spare[:0], nil, nil
		b.mu.Unlock()
		if len(bt.reqs)+len(bt.acks)+len(bt.damaged) > 0 {
			b.commit(&bt)
		}
		clear(bt.reqs)
		spare = bt.reqs
		if stopping {
			return
		}
	}
}

// commit applies bt and completes its waiters.
func (b *Buffer) commit(bt *batch) {
	var (
		added int
		err   error
	)
	for attempt := 0; ; attempt++ {
		added, err = b.tryCommit(bt)
		if err == nil || !errors.Is(err, berrors.ErrMaxSizeReached) || attempt == maxSizeRetries {
			break
		}
		// The file reached its hard ceiling (free pages held back by long
		// reads, fragmentation, page overhead). Drop telemetry in a commit
		// of its own, so that its pages are free for the retry. That
		// commit needs a few new pages itself, and a full file has none:
		// lift the ceiling for it alone, or a full file could never shrink
		// again. Only this goroutine runs write transactions, and only they
		// read db.MaxSize.
		target := b.w.state.bytes / 4 * 3
		b.log.Error("buffer file reached its size ceiling; dropping telemetry to make room",
			"path", b.path, "attempt", attempt+1, "stored_bytes", b.w.state.bytes, "target_bytes", target)
		ceiling := b.db.MaxSize
		b.db.MaxSize = 0
		n, derr := b.tryCommit(&batch{emergencyBytes: max(target, 1)})
		b.db.MaxSize = ceiling
		if derr != nil {
			b.log.Error("buffer emergency drop failed", "err", derr)
		}
		added += n
	}
	if err != nil {
		b.log.Error("buffer commit failed", "path", b.path, "appends", len(bt.reqs), "err", err)
		// The records of the acks and damaged refs are still stored: keep
		// them for the next commit instead of forgetting them.
		b.mu.Lock()
		b.acks = append(b.acks, bt.acks...)
		b.queueDamaged(bt.damaged)
		b.mu.Unlock()
	}
	for _, r := range bt.reqs {
		r.done <- err
	}
	if added > 0 {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
}

// tryCommit runs one write transaction for bt and returns how many records
// it added. The committed state changes only if the commit succeeds.
func (b *Buffer) tryCommit(bt *batch) (added int, err error) {
	st := b.w.state
	defer func() {
		if r := recover(); r != nil {
			added = 0
			err = fmt.Errorf("%w: %s: bbolt panicked in a write transaction: %v", ErrCorrupt, b.path, r)
		}
	}()
	err = b.db.Update(func(tx *bolt.Tx) error {
		var aerr error
		added, aerr = b.apply(tx, &st, bt)
		return aerr
	})
	if err != nil {
		return 0, err
	}
	b.w.state = st
	b.publishDurable(&st)
	b.commits.Add(1)
	return added, nil
}

// streamBuckets are the record buckets of one transaction.
type streamBuckets [2]*bolt.Bucket

// apply does the work of one commit inside tx: acks, removal of damaged
// records, appends, limits, gap events, counters. Order matters: acks come
// first so that an ack can never delete a record appended in the same
// commit, and limits come after the appends they must account for.
func (b *Buffer) apply(tx *bolt.Tx, st *state, bt *batch) (int, error) {
	var bk streamBuckets
	for _, s := range model.Streams {
		bk[s] = tx.Bucket(streamBucketName[s])
		if bk[s] == nil {
			return 0, fmt.Errorf("%w: bucket %s missing", ErrCorrupt, s)
		}
		bk[s].FillPercent = fillPercent
	}
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return 0, fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
	}
	b.w.keys = b.w.keys[:0]

	for _, a := range bt.acks {
		if err := deleteRange(bk[a.stream], a.stream, st, a.first, a.last); err != nil {
			return 0, fmt.Errorf("ack %s %d..%d: %w", a.stream, a.first, a.last, err)
		}
	}

	var gaps []model.GapInfo
	for _, r := range bt.damaged {
		g, err := removeDamaged(bk[r.stream], r, st)
		if err != nil {
			return 0, err
		}
		if g.Count > 0 {
			gaps = append(gaps, g)
		}
	}

	added := 0
	for _, r := range bt.reqs {
		for _, part := range [...]struct {
			s   model.Stream
			enc *encoded
		}{{model.StreamEvent, &r.events}, {model.StreamData, &r.samples}} {
			for i := range part.enc.len() {
				if err := b.put(bk[part.s], part.s, st, part.enc.at(i)); err != nil {
					return 0, err
				}
				added++
			}
		}
	}

	now := b.opts.Now()
	if b.opts.MaxAge > 0 {
		cutoff := now.Add(-b.opts.MaxAge - time.Duration(b.ageAllowance.Load()))
		g, err := dropOldest(bk[model.StreamData], model.StreamData, st, CauseAgeLimit, func(t time.Time, ok bool) bool {
			return ok && !t.Before(cutoff)
		}, nil)
		if err != nil {
			return 0, err
		}
		if g.Count > 0 {
			gaps = append(gaps, g)
		}
	}

	limit := uint64(b.opts.MaxBytes)
	target := uint64(float64(limit) * sizeHysteresis)
	if bt.emergencyBytes > 0 {
		limit = min(limit, bt.emergencyBytes)
		target = min(target, bt.emergencyBytes)
	}
	if st.bytes > limit {
		// Leave room for the gap events this commit is about to add, so
		// that they do not push the buffer over the limit themselves.
		reserve := uint64(gapEventReserve * (len(gaps) + 3)) // data, event, and a data gap reported again
		target = min(target, limit-min(limit, reserve))
		// Telemetry first; events only when no telemetry is left. A gap
		// event dropped in turn takes what it reported with it: its
		// range is reported again (reported), so that no gap becomes a
		// silent one.
		var reported [2]model.GapInfo
		for _, s := range [...]model.Stream{model.StreamData, model.StreamEvent} {
			var onDrop func(seq uint64, v []byte)
			if s == model.StreamEvent {
				onDrop = func(seq uint64, v []byte) {
					if r, err := decodeRecord(s, seq, v); err == nil && r.Event.Kind == model.Gap && r.Event.Gap != nil {
						if g := r.Event.Gap; g.Stream == model.StreamData.String() {
							mergeGap(&reported[model.StreamData], g)
						} else {
							mergeGap(&reported[model.StreamEvent], g)
						}
					}
				}
			}
			g, err := dropOldest(bk[s], s, st, CauseSizeLimit, func(time.Time, bool) bool {
				return st.bytes <= target
			}, onDrop)
			if err != nil {
				return 0, err
			}
			if s == model.StreamEvent && reported[s].Count > 0 {
				// The event numbers an earlier gap event reported lie
				// just below the ones dropped now: one range.
				mergeGap(&g, &reported[s])
			}
			if g.Count > 0 {
				gaps = append(gaps, g)
			}
		}
		if reported[model.StreamData].Count > 0 {
			gaps = append(gaps, reported[model.StreamData])
		}
	}

	for i := range gaps {
		n, err := b.putGap(bk[model.StreamEvent], st, &gaps[i], now)
		if err != nil {
			return 0, err
		}
		added += n
	}
	if st.count[model.StreamData] == 0 {
		// Nothing stamped before a past clock step is left.
		b.ageAllowance.Store(0)
	}
	return added, writeState(meta, st, &b.w.scratch)
}

// put stores v as the next record of stream s.
func (b *Buffer) put(bk *bolt.Bucket, s model.Stream, st *state, v []byte) error {
	seq := st.next[s]
	// Keys live in one writer-owned buffer: bbolt keeps references to
	// them until the commit, and reusing it keeps the write path from
	// allocating per record. Growing abandons the old array to the
	// transaction, which is fine.
	if cap(b.w.keys)-len(b.w.keys) < 8 {
		b.w.keys = make([]byte, 0, max(2*cap(b.w.keys), 8<<10))
	}
	b.w.keys = binary.BigEndian.AppendUint64(b.w.keys, seq)
	n := len(b.w.keys)
	if err := bk.Put(b.w.keys[n-8:n:n], v); err != nil {
		return fmt.Errorf("store %s record %d: %w", s, seq, err)
	}
	st.next[s] = seq + 1
	st.count[s]++
	st.bytes += uint64(8 + len(v))
	return nil
}

// putGap appends the Gap event that reports g.
func (b *Buffer) putGap(bk *bolt.Bucket, st *state, g *model.GapInfo, now time.Time) (int, error) {
	var span string
	if !g.From.IsZero() {
		span = fmt.Sprintf(", acquired %s to %s", g.From.Format(time.RFC3339Nano), g.To.Format(time.RFC3339Nano))
	}
	ev := model.Event{
		Kind:    model.Gap,
		Time:    now.UTC(),
		Message: fmt.Sprintf("buffer dropped %d %s records (seq %d to %d%s) because of the %s", g.Count, g.Stream, g.FirstSeq, g.LastSeq, span, g.Cause),
		Reason:  g.Cause,
		Gap:     g,
	}
	if g.Cause == CauseCorrupt {
		ev.Message = fmt.Sprintf("buffer removed %d damaged %s records (seq %d to %d) that failed their checksum", g.Count, g.Stream, g.FirstSeq, g.LastSeq)
	}
	v, err := appendEvent(nil, &ev)
	if err != nil {
		return 0, err
	}
	b.log.Warn(ev.Message, "stream", g.Stream, "count", g.Count, "first_seq", g.FirstSeq, "last_seq", g.LastSeq, "cause", g.Cause)
	if err := b.put(bk, model.StreamEvent, st, v); err != nil {
		return 0, err
	}
	return 1, nil
}

// deleteRange deletes the stored records first..last of a stream.
func deleteRange(bk *bolt.Bucket, s model.Stream, st *state, first, last uint64) error {
	c := bk.Cursor()
	from := seqKey(first)
	// Seek again after every Delete: a bbolt cursor's position after
	// Delete is not something to build on.
	for k, v := c.Seek(from); k != nil && keySeq(k) <= last; k, v = c.Seek(from) {
		size := uint64(len(k) + len(v))
		if err := c.Delete(); err != nil {
			return err
		}
		st.count[s]--
		st.bytes -= size
	}
	return nil
}

// removeDamaged deletes a record Read found damaged, if it is still there
// and still damaged, and describes it as a gap.
func removeDamaged(bk *bolt.Bucket, r recordRef, st *state) (model.GapInfo, error) {
	g := model.GapInfo{Stream: r.stream.String(), Cause: CauseCorrupt}
	k := seqKey(r.seq)
	v := bk.Get(k)
	if v == nil {
		return g, nil
	}
	if _, err := decodeRecord(r.stream, r.seq, v); err == nil {
		return g, nil
	}
	size := uint64(len(k) + len(v))
	if err := bk.Delete(k); err != nil {
		return g, fmt.Errorf("remove damaged %s record %d: %w", r.stream, r.seq, err)
	}
	st.count[r.stream]--
	st.bytes -= size
	st.corrupt++
	g.Count, g.FirstSeq, g.LastSeq = 1, r.seq, r.seq
	return g, nil
}

// dropOldest deletes the oldest records of stream s until keep says to
// stop, and describes what it deleted. keep gets the record's acquisition
// time and whether it decoded; damaged records are dropped (and counted
// as corrupt as well).
func dropOldest(bk *bolt.Bucket, s model.Stream, st *state, cause string, keep func(t time.Time, ok bool) bool, onDrop func(seq uint64, v []byte)) (model.GapInfo, error) {
	g := model.GapInfo{Stream: s.String(), Cause: cause}
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		t, terr := recordTime(s, v)
		if keep(t, terr == nil) {
			break
		}
		seq := keySeq(k)
		size := uint64(len(k) + len(v))
		if onDrop != nil {
			onDrop(seq, v) // before Delete: v lives in the page
		}
		if err := c.Delete(); err != nil {
			return g, fmt.Errorf("drop %s record %d: %w", s, seq, err)
		}
		st.count[s]--
		st.bytes -= size
		st.dropped[s]++
		if terr != nil {
			st.corrupt++
		}
		if g.Count == 0 {
			g.FirstSeq = seq
		}
		g.LastSeq = seq
		g.Count++
		if terr == nil && !t.IsZero() {
			if g.From.IsZero() || t.Before(g.From) {
				g.From = t
			}
			if t.After(g.To) {
				g.To = t
			}
		}
	}
	return g, nil
}

// mergeGap widens dst to cover src as well: the range from the lower
// first to the higher last, counts and time spans added, causes kept
// (joined when they differ).
func mergeGap(dst, src *model.GapInfo) {
	if src.Count == 0 {
		return
	}
	if dst.Count == 0 {
		*dst = *src
		return
	}
	dst.FirstSeq, dst.LastSeq = min(dst.FirstSeq, src.FirstSeq), max(dst.LastSeq, src.LastSeq)
	dst.Count += src.Count
	if !src.From.IsZero() && (dst.From.IsZero() || src.From.Before(dst.From)) {
		dst.From = src.From
	}
	if src.To.After(dst.To) {
		dst.To = src.To
	}
	if src.Cause != dst.Cause && !strings.Contains(dst.Cause, src.Cause) {
		dst.Cause += ", " + src.Cause
	}
}
