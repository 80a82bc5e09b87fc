package history

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"hazgate/internal/model"
)

// Retention, in the order it is applied:
//
//  1. Age: records older than MaxAge are deleted (Expired). That is the
//     policy working, not a loss.
//  2. Bytes: when the records exceed MaxBytes, raw samples older than
//     DownsampleAfter are folded, oldest first, into one aggregate per tag
//     and DownsampleInterval (min, max, count-weighted mean, count of
//     values, count of bad samples, worst quality), until the records are
//     under the low-water mark (90 % of MaxBytes) or nothing old enough is
//     left raw. Min and max keep the extremes a regulator would look for;
//     the mean draws the trend. An interval with a single raw sample is
//     left as it is: folding it would save nothing.
//  3. Only if still over: the oldest records (aggregates or raw) are
//     deleted until under the low-water mark. That is a loss within
//     MaxAge: it is counted (Deleted) and logged at warning level with the
//     time range, so that an operator knows to raise max_bytes.
//
// Every step works in transactions of at most maxTouch records, so a
// first pass over a large file does not build one huge transaction.

const (
	lowWaterPercent = 90
	maxTouch        = 100_000
)

// Enforce applies the age and byte bounds. The writer calls it after its
// flushes; it is exported for tools and tests.
func (s *Store) Enforce() error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.expire(); err != nil {
		return err
	}
	return s.bound()
}

// overBytes says whether Enforce would have work for the byte bound.
func (s *Store) overBytes() bool {
	s.shownMu.Lock()
	defer s.shownMu.Unlock()
	return int64(s.shown.bytes) > s.opts.MaxBytes
}

func (s *Store) lowWater() uint64 { return uint64(s.opts.MaxBytes) * lowWaterPercent / 100 }

// expire deletes records older than MaxAge.
func (s *Store) expire() error {
	if s.opts.MaxAge <= 0 {
		return nil
	}
	cutoff := timeKey(s.opts.Now().Add(-s.opts.MaxAge))
	var n uint64
	for {
		// one pass deletes at most maxTouch records per tag
		d, _, _, err := s.deleteBefore(cutoff)
		if err != nil {
			return fmt.Errorf("history: expire records older than %s: %w", s.opts.MaxAge, err)
		}
		if d == 0 {
			break
		}
		n += d
	}
	if n > 0 {
		s.st.expired += n
		if err := s.saveCounters(); err != nil {
			return err
		}
		s.log.Debug("history records expired", "records", n, "max_age", s.opts.MaxAge)
	}
	return nil
}

// bound keeps the records under MaxBytes: downsample first, delete last.
func (s *Store) bound() error {
	if int64(s.st.bytes) <= s.opts.MaxBytes {
		return nil
	}
	before := s.st
	if err := s.downsample(); err != nil {
		return fmt.Errorf("history: downsample: %w", err)
	}
	if folded := s.st.downsampled - before.downsampled; folded > 0 {
		s.log.Info("history over max_bytes: old samples downsampled",
			"samples", folded, "aggregates_now", s.st.agg, "interval", s.opts.DownsampleInterval,
			"bytes_before", before.bytes, "bytes_after", s.st.bytes, "max_bytes", s.opts.MaxBytes)
	}
	var (
		total       uint64
		first, last time.Time
	)
	for s.st.bytes > s.lowWater() {
		oldest, ok, err := s.oldestKey()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		end := oldest + uint64(s.window())
		n, f, l, err := s.deleteBefore(end)
		if err != nil {
			return fmt.Errorf("history: delete oldest records: %w", err)
		}
		if n == 0 {
			break
		}
		total += n
		if first.IsZero() {
			first = f
		}
		last = l
	}
	if total > 0 {
		s.st.deleted += total
		if err := s.saveCounters(); err != nil {
			return err
		}
		s.log.Warn("history over max_bytes after downsampling: oldest records deleted within max_age (raise history.max_bytes)",
			"records", total, "from", first, "to", last, "max_bytes", s.opts.MaxBytes, "deleted_ever", s.st.deleted)
	}
	return nil
}

// window is the span one downsampling step covers: whole intervals, about
// an hour.
func (s *Store) window() time.Duration {
	iv := s.opts.DownsampleInterval
	n := max(int64(time.Hour/iv), 1)
	return iv * time.Duration(n)
}

func (s *Store) saveCounters() error {
	st := s.st
	if err := s.db.Update(func(tx *bolt.Tx) error { return st.save(tx.Bucket(metaBucket)) }); err != nil {
		return err
	}
	s.publish()
	return nil
}

// tagNames lists the tag buckets.
func (s *Store) tagNames() ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(tagsBucket).ForEachBucket(func(k []byte) error {
			out = append(out, bytes.Clone(k))
			return nil
		})
	})
	return out, err
}

// oldestKey is the smallest record time (Unix ns) over all tags, in
// either bucket; ok is false when there is none.
func (s *Store) oldestKey() (t uint64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, root := range [][]byte{oldBucket, tagsBucket} {
			r := tx.Bucket(root)
			if err := r.ForEachBucket(func(name []byte) error {
				k, _ := r.Bucket(name).Cursor().First()
				if len(k) == keyLen {
					if kt := binary.BigEndian.Uint64(k[:8]); !ok || kt < t {
						t, ok = kt, true
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return t, ok, err
}

// oldestRaw is the time of the oldest raw sample at or after from, over
// all tags.
func (s *Store) oldestRaw(from uint64) (t uint64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		tags := tx.Bucket(tagsBucket)
		return tags.ForEachBucket(func(name []byte) error {
			it, err := newRecIter(string(name), tags.Bucket(name), from)
			if err != nil {
				return err
			}
			r, err := it.peek()
			if err != nil {
				return err
			}
			if r != nil {
				if rt := timeKey(r.Time); !ok || rt < t {
					t, ok = rt, true
				}
			}
			return nil
		})
	})
	return t, ok, err
}

// tagTx is one tag's buckets inside an update.
type tagTx struct {
	name    []byte
	raw     *bolt.Bucket // never nil
	oldRoot *bolt.Bucket
}

// old returns the tag's bucket of downsampled records, creating it.
func (t tagTx) old() (*bolt.Bucket, error) {
	b, err := t.oldRoot.CreateBucketIfNotExists(t.name)
	if err != nil {
		return nil, err
	}
	b.FillPercent = 0.9 // appended in time order
	return b, nil
}

// eachTag runs fn for every tag, committing whenever the records fn
// touched reach maxTouch, and once at the end. fn returns how many records
// it touched. Counters are updated in s.st as fn changes them and saved
// with each commit; on an error s.st is reloaded from the file.
func (s *Store) eachTag(fn func(t tagTx) (int, error)) error {
	names, err := s.tagNames()
	if err != nil {
		return err
	}
	for len(names) > 0 {
		err := s.db.Update(func(tx *bolt.Tx) error {
			tags, oldRoot := tx.Bucket(tagsBucket), tx.Bucket(oldBucket)
			touched := 0
			for len(names) > 0 && touched < maxTouch {
				if b := tags.Bucket(names[0]); b != nil {
					n, err := fn(tagTx{name: names[0], raw: b, oldRoot: oldRoot})
					if err != nil {
						return fmt.Errorf("tag %s: %w", names[0], err)
					}
					touched += n
				}
				names = names[1:]
			}
			return s.st.save(tx.Bucket(metaBucket))
		})
		if err != nil {
			_ = s.db.View(func(tx *bolt.Tx) error { s.st.load(tx.Bucket(metaBucket)); return nil })
			s.publish()
			return err
		}
		s.publish()
	}
	return nil
}

// deleteBefore deletes records older than end (Unix ns), about maxTouch
// per tag and bucket at most, and returns how many, and the times of the
// first and last deleted. A chunk that reaches past end keeps its younger
// records under a new key. Both buckets only lose their front.
func (s *Store) deleteBefore(end uint64) (n uint64, first, last time.Time, err error) {
	err = s.eachTag(func(t tagTx) (int, error) {
		touched := 0
		for _, b := range []*bolt.Bucket{t.oldRoot.Bucket(t.name), t.raw} {
			if b == nil {
				continue
			}
			var (
				keys [][]byte
				keep []Record
				recs []Record
			)
			c := b.Cursor()
			for k, v := c.First(); k != nil && touched < maxTouch; k, v = c.Next() {
				s.st.bytes -= recordBytes(k, v)
				keys = append(keys, bytes.Clone(k))
				if len(k) != keyLen {
					continue
				}
				if keyNanos(k) >= end {
					s.st.bytes += recordBytes(k, v)
					keys = keys[:len(keys)-1]
					break
				}
				var err error
				if recs, err = decodeEntry(recs[:0], string(t.name), k, v); err != nil {
					// older than the bound and unreadable: it goes, uncounted
					s.log.Warn("history: a damaged entry older than the bound was deleted", "err", err)
					continue
				}
				i := 0
				for ; i < len(recs) && timeKey(recs[i].Time) < end; i++ {
					if first.IsZero() || recs[i].Time.Before(first) {
						first = recs[i].Time
					}
					if recs[i].Time.After(last) {
						last = recs[i].Time
					}
				}
				raw, agg := countKinds(recs[:i])
				s.st.raw -= raw
				s.st.agg -= agg
				touched += i
				n += uint64(i)
				if i < len(recs) {
					keep = append(keep, recs[i:]...)
					raw, agg = countKinds(recs[i:])
					s.st.raw -= raw
					s.st.agg -= agg
					break
				}
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return touched, err
				}
			}
			if err := putChunks(b, keep, &s.st); err != nil {
				return touched, err
			}
		}
		return touched, nil
	})
	return n, first, last, err
}

// downsample folds raw samples older than DownsampleAfter into aggregates,
// oldest window first, until the records are under the low-water mark.
// The watermark in meta says how far it got: raw samples before it are
// in the "old" buckets, so the next pass starts there.
func (s *Store) downsample() error {
	iv := uint64(s.opts.DownsampleInterval)
	cutoff := timeKey(s.opts.Now().Add(-s.opts.DownsampleAfter))
	cutoff -= cutoff % iv
	win := uint64(s.window())
	t := s.st.watermark
	for s.st.bytes > s.lowWater() && t < cutoff {
		next, ok, err := s.oldestRaw(t)
		if err != nil {
			return err
		}
		if !ok || next >= cutoff {
			break
		}
		t = next - next%iv
		end := min(t+win, cutoff)
		if err := s.eachTag(func(tt tagTx) (int, error) { return s.fold(tt, t, end) }); err != nil {
			return err
		}
		t = end
		s.st.watermark = end
	}
	return s.saveCounters()
}

// fold moves the raw samples of one tag in [start, end) to its old
// bucket: one aggregate per interval, or the sample itself when it is
// alone in its interval, written as chunks. Records of a touched chunk
// outside the window stay raw, in a chunk of their own.
func (s *Store) fold(t tagTx, start, end uint64) (int, error) {
	iv := uint64(s.opts.DownsampleInterval)
	tag := string(t.name)
	var (
		recs []Record
		keys [][]byte
		size uint64
		err  error
	)
	if k, v := entryBefore(t.raw, start); len(k) == keyLen {
		n := len(recs)
		if recs, err = decodeEntry(recs, tag, k, v); err != nil {
			return 0, err
		}
		if len(recs) > n && timeKey(recs[len(recs)-1].Time) >= start {
			keys, size = append(keys, bytes.Clone(k)), size+recordBytes(k, v)
		} else {
			recs = recs[:n]
		}
	}
	c := t.raw.Cursor()
	for k, v := c.Seek(seekKey(start)); k != nil; k, v = c.Next() {
		if len(k) != keyLen {
			continue
		}
		if keyNanos(k) >= end {
			break
		}
		if recs, err = decodeEntry(recs, tag, k, v); err != nil {
			return 0, err
		}
		keys, size = append(keys, bytes.Clone(k)), size+recordBytes(k, v)
	}
	var keep, in, out []Record
	for _, r := range recs {
		if rt := timeKey(r.Time); rt < start || rt >= end {
			keep = append(keep, r)
		} else {
			in = append(in, r)
		}
	}
	if len(in) == 0 {
		return 0, nil
	}
	for i := 0; i < len(in); {
		gs := timeKey(in[i].Time)
		gs -= gs % iv
		j := i + 1
		for j < len(in) && timeKey(in[j].Time)-timeKey(in[j].Time)%iv == gs {
			j++
		}
		if j-i == 1 {
			// folding one sample would only make it bigger
			out = append(out, in[i])
		} else {
			a := merge(in[i:j], time.Duration(iv))
			a.Tag, a.Time = tag, time.Unix(0, int64(gs)).UTC()
			out = append(out, a)
			s.st.downsampled += uint64(j - i)
		}
		i = j
	}
	for _, k := range keys {
		if err := t.raw.Delete(k); err != nil {
			return 0, err
		}
	}
	raw, agg := countKinds(recs)
	s.st.raw -= raw
	s.st.agg -= agg
	s.st.bytes -= size
	if err := putChunks(t.raw, keep, &s.st); err != nil {
		return 0, err
	}
	old, err := t.old()
	if err != nil {
		return 0, err
	}
	if err := putChunks(old, out, &s.st); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// merge combines records (raw or aggregates) of one interval.
func merge(recs []Record, iv time.Duration) Record {
	out := Record{Interval: iv, Min: math.Inf(1), Max: math.Inf(-1)}
	var sum float64
	for _, r := range recs {
		out.Bad += r.Bad
		if worse(r.Quality, out.Quality) {
			out.Quality = r.Quality
		}
		if r.Count == 0 {
			continue
		}
		out.Count += r.Count
		sum += r.Value * float64(r.Count)
		out.Min = math.Min(out.Min, r.Min)
		out.Max = math.Max(out.Max, r.Max)
	}
	if out.Count == 0 {
		out.Min, out.Max = 0, 0
		return out
	}
	out.Value = sum / float64(out.Count)
	return out
}

// worse orders qualities: bad is worse than uncertain, which is worse
// than good.
func worse(a, b model.Quality) bool {
	rank := func(q model.Quality) int {
		switch q {
		case model.Good:
			return 0
		case model.Uncertain:
			return 1
		}
		return 2
	}
	return rank(a) > rank(b)
}
