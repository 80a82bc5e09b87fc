package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"hazgate/internal/model"
)

// sameRecord compares to the bit: values, times to the ns, every field.
func sameRecord(a, b Record) bool {
	return a.Tag == b.Tag && a.Time.Equal(b.Time) && a.Interval == b.Interval &&
		math.Float64bits(a.Value) == math.Float64bits(b.Value) &&
		math.Float64bits(a.Min) == math.Float64bits(b.Min) && math.Float64bits(a.Max) == math.Float64bits(b.Max) &&
		a.Count == b.Count && a.Bad == b.Bad && a.Quality == b.Quality && a.Reason == b.Reason
}

// chunkRecords is a mix a chunk must carry exactly: steady and irregular
// times, equal times, values that do not move, integers, noise, the
// special floats, every quality, reasons new and repeated, aggregates of
// several intervals and extreme counts.
func chunkRecords() []Record {
	var out []Record
	tm := t0.Add(123456789)
	raw := func(v float64, q model.Quality, reason string) {
		r := recordFromSample(model.Sample{Tag: "LT-101", Time: tm, Value: v, Quality: q, Reason: reason})
		out = append(out, r)
	}
	for i := range 300 {
		switch i % 10 {
		case 0:
			tm = tm.Add(time.Second)
		case 1:
			tm = tm.Add(time.Second + time.Duration(i)*time.Microsecond)
		case 2:
			// the same time twice: the codec carries it (Write keeps one)
		case 3:
			tm = tm.Add(17 * time.Hour)
		default:
			tm = tm.Add(time.Duration(i) * time.Millisecond)
		}
		switch i % 13 {
		case 0:
			raw(wave(i), model.Good, "")
		case 1:
			raw(0, model.Bad, "exception: 2 (illegal data address), \"quoted\"")
		case 2:
			raw(0, model.Bad, "exception: 2 (illegal data address), \"quoted\"")
		case 3:
			raw(1e-300, model.Uncertain, model.ReasonOutOfRange)
		case 4:
			raw(math.Copysign(0, -1), model.Good, "")
		case 5:
			raw(math.NaN(), model.Bad, model.ReasonTimeout)
		case 6:
			raw(math.Inf(-1), model.Uncertain, "")
		case 7:
			raw(float64(i), model.Good, "")
		case 8:
			raw(float64(i), model.Good, "")
		default:
			a := Record{Tag: "LT-101", Time: tm, Interval: time.Duration(1+i%3) * time.Minute, Value: wave(i) / 3,
				Min: wave(i) - 1, Max: wave(i) + 1, Count: uint32(i), Bad: uint32(i % 4), Quality: model.Quality(i % 3)}
			if i%5 == 0 {
				a.Count, a.Bad = math.MaxUint32, math.MaxUint32
			}
			if a.Count == 0 {
				a.Min, a.Max, a.Value = 0, 0, 0
			}
			out = append(out, a)
		}
	}
	return out
}

// TestChunkRoundTrip: records cut into chunks and decoded again are the
// same to the bit, and chunks stay near maxChunkBytes.
func TestChunkRoundTrip(t *testing.T) {
	in := chunkRecords()
	kvs := encodeChunks(nil, in)
	if len(kvs) < 2 {
		t.Fatalf("%d records in %d chunks: the test does not cross a chunk boundary", len(in), len(kvs))
	}
	var got []Record
	size := 0
	for _, kv := range kvs {
		if len(kv.v) > maxChunkBytes+200 {
			t.Errorf("chunk of %d bytes", len(kv.v))
		}
		size += len(kv.v)
		var err error
		if got, err = decodeEntry(got, "LT-101", kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(in) {
		t.Fatalf("%d records back, %d in", len(got), len(in))
	}
	for i := range in {
		if !sameRecord(got[i], in[i]) {
			t.Fatalf("record %d = %+v, in %+v", i, got[i], in[i])
		}
	}
	t.Logf("%d records in %d chunks, %.1f bytes a record", len(in), len(kvs), float64(size)/float64(len(in)))

	// appending to a decoded chunk is the same as encoding in one go
	k, v := kvs[0].k, kvs[0].v
	recs, st, err := decodeChunk(nil, "LT-101", int64(keyNanos(k)), v)
	if err != nil {
		t.Fatal(err)
	}
	next := in[len(recs)]
	appended := appendRecord(bytes.Clone(v), &st, next)
	back, _, err := decodeChunk(nil, "LT-101", int64(keyNanos(k)), appended)
	if err != nil || len(back) != len(recs)+1 || !sameRecord(back[len(recs)], next) {
		t.Fatalf("append: %v, %d records, last %+v", err, len(back), back[len(back)-1])
	}
}

// FuzzDecodeChunk: whatever the bytes of a chunk, decoding returns
// records or an error wrapping ErrCorrupt, never panics, and what it
// returns is in time order.
//
//	go test -run '^$' -fuzz FuzzDecodeChunk -fuzztime 60s ./internal/history/
func FuzzDecodeChunk(f *testing.F) {
	for _, kv := range encodeChunks(nil, chunkRecords()) {
		f.Add(kv.v)
	}
	f.Add([]byte{})
	f.Add([]byte{chunkVersion})
	f.Add([]byte{chunkVersion, 0, 0, 0x80})
	f.Add([]byte{chunkVersion, flagSameReason, 0, 0x80})
	f.Add([]byte{chunkVersion, flagAggregate, 0, 1, 1, 0, 0x80, 0x80, 0x80})
	f.Add([]byte{chunkVersion, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		kt := int64(timeKey(t0))
		recs, _, err := decodeChunk(nil, "T", kt, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("a chunk without records decoded without an error")
		}
		for i, r := range recs {
			if r.Time.Before(t0) || i > 0 && r.Time.Before(recs[i-1].Time) {
				t.Fatalf("record %d at %s goes back", i, r.Time)
			}
			if r.Quality > maxQuality {
				t.Fatalf("record %d has quality %d", i, r.Quality)
			}
		}
		// and whole, through the entry decoder with a chunk key
		if _, err := decodeEntry(nil, "T", makeKey(t0, kindChunk), v); err != nil {
			t.Fatal(err)
		}
	})
}

// fileTotals recomputes from the file what the counters say: bytes, raw
// samples and aggregates.
func fileTotals(t *testing.T, s *Store) (bytes, raw, agg uint64) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, root := range [][]byte{tagsBucket, oldBucket} {
			r := tx.Bucket(root)
			if err := r.ForEachBucket(func(name []byte) error {
				return r.Bucket(name).ForEach(func(k, v []byte) error {
					bytes += recordBytes(k, v)
					recs, err := decodeEntry(nil, string(name), k, v)
					if err != nil {
						return err
					}
					rw, ag := countKinds(recs)
					raw, agg = raw+rw, agg+ag
					return nil
				})
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes, raw, agg
}

func checkCounters(t *testing.T, s *Store) {
	t.Helper()
	b, raw, agg := fileTotals(t, s)
	if st := s.Stats(); uint64(st.Bytes) != b || st.Raw != raw || st.Aggregates != agg {
		t.Fatalf("counters say %d bytes, %d raw, %d aggregates; the file holds %d, %d, %d", st.Bytes, st.Raw, st.Aggregates, b, raw, agg)
	}
}

// TestChunksAppendAndMerge: rounds of one sample per tag are packed into
// few chunks; samples older than what a tag holds (a clock set back) are
// merged in time order, a repeated time replacing the stored sample; the
// counters match the file after every step, retention included.
func TestChunksAppendAndMerge(t *testing.T) {
	clk := &clock{t: t0}
	s := open(t, Options{MaxAge: 24 * time.Hour, Now: clk.Now})
	for i := range 600 { // ten minutes of 1 s rounds
		if err := s.Write(samples([]string{"A", "B"}, t0.Add(time.Duration(i)*time.Second), time.Second, 1)); err != nil {
			t.Fatal(err)
		}
	}
	checkCounters(t, s)
	var keys int
	_ = s.db.View(func(tx *bolt.Tx) error {
		keys = tx.Bucket(tagsBucket).Bucket([]byte("A")).Stats().KeyN
		return nil
	})
	if keys > 20 {
		t.Fatalf("600 one-sample rounds of a tag made %d keys: not appended to chunks", keys)
	}
	st := s.Stats()
	t.Logf("600 rounds: %d keys for tag A, %.1f bytes a sample", keys, float64(st.Bytes)/float64(st.Raw))

	// the clock went back 5 minutes: 60 samples at 1 s from 5:00, all at
	// times already held, and one between two seconds
	back := samples([]string{"A"}, t0.Add(5*time.Minute), time.Second, 60)
	for i := range back {
		back[i].Value = -float64(i)
	}
	back = append(back, model.Sample{Tag: "A", Time: t0.Add(5*time.Minute + 500*time.Millisecond), Value: 0.5})
	if err := s.Write(back); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s)
	recs := all(t, s, "A")
	if len(recs) != 600+1 {
		t.Fatalf("%d records of A, want 601", len(recs))
	}
	for i, r := range recs {
		if i > 0 && !r.Time.After(recs[i-1].Time) {
			t.Fatalf("record %d at %s after %s", i, r.Time, recs[i-1].Time)
		}
		off := r.Time.Sub(t0)
		switch {
		case off == 5*time.Minute+500*time.Millisecond:
			if r.Value != 0.5 {
				t.Fatalf("the sample between two seconds: %+v", r)
			}
		case off >= 5*time.Minute && off < 6*time.Minute:
			if want := -(off - 5*time.Minute).Seconds(); r.Value != want {
				t.Fatalf("record at %s = %v, want %v (the later write wins)", off, r.Value, want)
			}
		default:
			if r.Value < 0 {
				t.Fatalf("record at %s was changed: %+v", off, r)
			}
		}
	}
	if first, last, err := s.Span("A"); err != nil || !first.Equal(t0) || !last.Equal(t0.Add(9*time.Minute+59*time.Second)) {
		t.Fatalf("span %s - %s, %v", first, last, err)
	}

	// expiry cuts through a chunk: the rest stays, counted
	clk.Set(t0.Add(24*time.Hour + 90*time.Second + 500*time.Millisecond))
	if err := s.Enforce(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s)
	recs = all(t, s, "A")
	if !recs[0].Time.Equal(t0.Add(91 * time.Second)) {
		t.Fatalf("after expiry the first record is at %s", recs[0].Time.Sub(t0))
	}
	if st := s.Stats(); st.Expired != 2*91 {
		t.Fatalf("expired %d, want %d", st.Expired, 2*91)
	}
}

// writeFirstLayout makes a history file as the gateway wrote it before
// chunks: one key per raw sample in "tags", aggregates in "old", counters,
// no layout key.
func writeFirstLayout(t *testing.T, path string, tags []string, from time.Time, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var c counters
	err = db.Update(func(tx *bolt.Tx) error {
		root, _ := tx.CreateBucket(tagsBucket)
		oldRoot, _ := tx.CreateBucket(oldBucket)
		for _, tag := range tags {
			b, err := root.CreateBucket([]byte(tag))
			if err != nil {
				return err
			}
			ob, err := oldRoot.CreateBucket([]byte(tag))
			if err != nil {
				return err
			}
			// an hour of aggregates before the raw samples
			for m := range 60 {
				r := Record{Time: from.Add(time.Duration(m-60) * time.Minute), Interval: time.Minute, Value: float64(m), Min: 0, Max: 2 * float64(m), Count: 60, Quality: model.Good}
				k, v := makeKey(r.Time, kindAggregate), encodeAgg(r)
				if err := ob.Put(k, v); err != nil {
					return err
				}
				c.bytes += recordBytes(k, v)
				c.agg++
			}
			for _, sm := range samples([]string{tag}, from, time.Second, n) {
				if sm.Time.Second() == 7 {
					sm.Quality, sm.Reason, sm.Value = model.Bad, model.ReasonTimeout, 0
				}
				k, v := makeKey(sm.Time, kindRaw), encodeRaw(sm)
				if err := b.Put(k, v); err != nil {
					return err
				}
				c.bytes += recordBytes(k, v)
				c.raw++
			}
		}
		c.downsampled = 3600
		c.watermark = timeKey(from)
		meta, _ := tx.CreateBucket(metaBucket)
		return c.save(meta)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFirstLayoutFile: a file of the first layout (one record per sample)
// opens without conversion and says so in the log; its records read,
// export and trend as before; new samples go to chunks after them, a
// sample at a time it already held replaces it; retention removes old
// records like new ones, and the counters stay true.
func TestFirstLayoutFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	writeFirstLayout(t, path, []string{"LT-101", "PT-201"}, t0, 600)
	var logs bytes.Buffer
	clk := &clock{t: t0.Add(10 * time.Minute)}
	s, moved, err := OpenOrRecover(path, Options{MaxAge: 24 * time.Hour, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || moved != "" {
		t.Fatalf("open: %v, moved to %q", err, moved)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "first layout") {
		t.Fatalf("the old layout was not logged:\n%s", logs.String())
	}
	checkCounters(t, s)
	recs := all(t, s, "LT-101")
	if len(recs) != 660 || !recs[0].Aggregate() || recs[60].Aggregate() || recs[67].Quality != model.Bad || recs[67].Reason != model.ReasonTimeout {
		t.Fatalf("%d records; first %+v, 61st %+v", len(recs), recs[0], recs[60])
	}
	var csv1 bytes.Buffer
	if _, err := Export(s, &csv1, FormatCSV, "LT-101", t0.Add(-time.Hour), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if pts, _, err := Trend(s, "LT-101", t0.Add(-time.Hour), t0.Add(10*time.Minute), 70); err != nil || len(pts) != 70 {
		t.Fatalf("trend over the old records: %d points, %v", len(pts), err)
	}

	// new rounds, and one that repeats the last old second
	more := samples([]string{"LT-101", "PT-201"}, t0.Add(599*time.Second), time.Second, 60)
	more[0].Value, more[1].Value = -1, -1
	if err := s.Write(more); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s)
	recs = all(t, s, "LT-101")
	if len(recs) != 660+59 {
		t.Fatalf("%d records after new rounds, want %d", len(recs), 660+59)
	}
	if r := recs[659]; !r.Time.Equal(t0.Add(599*time.Second)) || r.Value != -1 {
		t.Fatalf("the repeated second: %+v", r)
	}
	for i, r := range recs {
		if i > 0 && !r.Time.After(recs[i-1].Time) {
			t.Fatalf("out of order at %d", i)
		}
	}
	// what was exported before the new rounds reads the same now
	var csv2 bytes.Buffer
	if _, err := Export(s, &csv2, FormatCSV, "LT-101", t0.Add(-time.Hour), t0.Add(599*time.Second)); err != nil {
		t.Fatal(err)
	}
	if want := csv1.String()[:strings.LastIndex(strings.TrimSuffix(csv1.String(), "\n"), "\n")+1]; csv2.String() != want {
		t.Fatalf("export of the old records changed:\n%.300s\nwas\n%.300s", csv2.String(), want)
	}

	// a day on, the old aggregates and the first five minutes expire
	clk.Set(t0.Add(24*time.Hour + 5*time.Minute))
	if err := s.Enforce(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s)
	if recs := all(t, s, "PT-201"); len(recs) != 659-300 || !recs[0].Time.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after expiry %d records from %s", len(recs), recs[0].Time)
	}
	if st := s.Stats(); st.Expired != 2*(60+300) {
		t.Fatalf("expired %d, want %d", st.Expired, 2*360)
	}
}

// TestDamagedChunk: a chunk whose bytes were damaged makes Range, Export
// and Trend return an error wrapping ErrCorrupt (no panic); the other
// tags read as before and the gateway's writes go on.
func TestDamagedChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(samples([]string{"A", "B"}, t0, time.Second, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(tagsBucket).Bucket([]byte("A"))
		k, v := b.Cursor().First()
		bad := bytes.Clone(v)
		bad[len(bad)/2] = 0xff // a flags byte or a float header, either way invalid or misaligned
		bad = append(bad[:len(bad)-3], 0xe0)
		return b.Put(bytes.Clone(k), bad)
	}); err != nil {
		t.Fatal(err)
	}
	err = s.Range("A", t0, t0.Add(time.Hour), func(Record) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("range over a damaged chunk: %v", err)
	}
	if _, err := Export(s, &bytes.Buffer{}, FormatCSV, "A", t0, t0.Add(time.Hour)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("export: %v", err)
	}
	if _, _, err := Trend(s, "A", t0, t0.Add(time.Hour), 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trend: %v", err)
	}
	if recs := all(t, s, "B"); len(recs) != 100 {
		t.Fatalf("B: %d records", len(recs))
	}
	if err := s.Write(samples([]string{"A", "B"}, t0.Add(time.Hour), time.Second, 10)); err != nil {
		t.Fatalf("writes after the damage: %v", err)
	}
}

// TestNewerLayoutMovedAside: a file of a layout this code does not know
// (a newer gateway's, after a downgrade) is moved aside like a corrupt
// one, and a new file started.
func TestNewerLayoutMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(keyLayout, binary.BigEndian.AppendUint64(nil, layoutChunks+1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only open of a newer layout: %v", err)
	}
	var logs bytes.Buffer
	s, moved, err := OpenOrRecover(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || moved == "" {
		t.Fatalf("open: %v, moved to %q", err, moved)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "newer than this gateway reads") {
		t.Fatalf("log:\n%s", logs.String())
	}
}
