package history

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/model"
)

// clock is a settable time for the retention tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func open(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), File), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wave is a level that moves enough for min and max to matter.
func wave(i int) float64 { return 10 + 5*math.Sin(float64(i)/17) + float64(i%7)*0.125 }

// samples makes n samples per tag, every step from start.
func samples(tags []string, start time.Time, step time.Duration, n int) []model.Sample {
	out := make([]model.Sample, 0, n*len(tags))
	for i := range n {
		for j, tag := range tags {
			out = append(out, model.Sample{Tag: tag, Device: "plc", Value: wave(i + j*3), Time: start.Add(time.Duration(i) * step)})
		}
	}
	return out
}

func all(t *testing.T, s *Store, tag string) []Record {
	t.Helper()
	var out []Record
	if err := s.Range(tag, time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), func(r Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// parseCSV reads a CSV export back into records.
func parseCSV(t *testing.T, b []byte) []Record {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("header %v", rows[:min(1, len(rows))])
	}
	var out []Record
	for _, row := range rows[1:] {
		tm, err := time.Parse(time.RFC3339Nano, row[0])
		if err != nil {
			t.Fatal(err)
		}
		q, err := model.ParseQuality(row[3])
		if err != nil {
			t.Fatal(err)
		}
		f := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		u := func(s string) uint32 {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(v)
		}
		out = append(out, Record{Time: tm, Tag: row[1], Value: f(row[2]), Quality: q, Reason: row[4],
			Min: f(row[5]), Max: f(row[6]), Count: u(row[7]), Bad: u(row[8]), Interval: time.Duration(f(row[9]) * float64(time.Second))})
	}
	return out
}

// TestExportRoundTrip: what was written comes back from a CSV and a JSON
// export exactly (values to the last bit, times to the nanosecond,
// quality and reason), only the asked tag and window, in time order.
func TestExportRoundTrip(t *testing.T) {
	s := open(t, Options{})
	var written []model.Sample
	for i := range 500 {
		tm := t0.Add(time.Duration(i)*time.Second + time.Duration(i)*time.Microsecond + 7)
		for _, tag := range []string{"LT-101", "LT-102", "LT-1010"} {
			sm := model.Sample{Tag: tag, Device: "plc", Value: wave(i) / 3, Time: tm}
			switch i % 50 {
			case 3:
				sm.Value, sm.Quality, sm.Reason = 0, model.Bad, "exception: 2 (illegal data address), \"quoted\""
			case 4:
				sm.Value, sm.Quality, sm.Reason = 1e-300, model.Uncertain, model.ReasonOutOfRange
			case 5:
				sm.Value = -0.1
			}
			written = append(written, sm)
		}
		if i%37 == 36 { // batches of uneven size, as commits come
			if err := s.Write(written[len(written)-37*3:]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Write(written[len(written)-(500%37)*3:]); err != nil {
		t.Fatal(err)
	}
	from, to := t0.Add(100*time.Second), t0.Add(400*time.Second+400*time.Microsecond+7)
	var want []model.Sample
	for _, sm := range written {
		if sm.Tag == "LT-101" && !sm.Time.Before(from) && sm.Time.Before(to) {
			want = append(want, sm)
		}
	}
	if len(want) != 300 {
		t.Fatalf("test window holds %d samples, want 300", len(want))
	}
	check := func(format string, got []Record) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d records back, wrote %d", format, len(got), len(want))
		}
		for i, r := range got {
			w := want[i]
			if r.Tag != w.Tag || !r.Time.Equal(w.Time) || math.Float64bits(r.Value) != math.Float64bits(w.Value) ||
				r.Quality != w.Quality || r.Reason != w.Reason || r.Aggregate() {
				t.Fatalf("%s: record %d = %+v, wrote %+v", format, i, r, w)
			}
		}
	}
	var out bytes.Buffer
	n, err := Export(s, &out, FormatCSV, "LT-101", from, to)
	if err != nil || n != len(want) {
		t.Fatalf("csv export: %d, %v", n, err)
	}
	check("csv", parseCSV(t, out.Bytes()))

	out.Reset()
	if _, err := Export(s, &out, FormatJSON, "LT-101", from, to); err != nil {
		t.Fatal(err)
	}
	var js []JSONRecord
	if err := json.Unmarshal(out.Bytes(), &js); err != nil {
		t.Fatalf("json export does not parse: %v\n%.300s", err, out.String())
	}
	var got []Record
	for _, j := range js {
		tm, err := time.Parse(time.RFC3339Nano, j.Time)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := model.ParseQuality(j.Quality)
		if j.Count != nil {
			t.Fatalf("a raw sample has aggregate fields: %+v", j)
		}
		got = append(got, Record{Tag: j.Tag, Time: tm, Value: j.Value, Quality: q, Reason: j.Reason})
	}
	check("json", got)

	// an empty window is a header only; an unknown tag too
	out.Reset()
	if n, err := Export(s, &out, FormatCSV, "NOPE", from, to); err != nil || n != 0 || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("unknown tag: %d, %v, %q", n, err, out.String())
	}
}

// TestBytesBoundDownsamples: four days of samples every 5 s for two
// tags are more than twice max_bytes raw. Past max_bytes the store folds
// samples older than downsample_after into one-minute aggregates: the
// records stay under max_bytes, nothing within max_age is deleted, the
// oldest minute is still there with its true extremes, and the last hour
// is still raw. (Sized for chunks: at one sample every 10 s a minute of
// raw chunks is barely twice its aggregate, so "twice max_bytes raw" and
// "the aggregates fit" could not both hold.)
func TestBytesBoundDownsamples(t *testing.T) {
	clk := &clock{t: t0}
	const maxBytes = 512 << 10
	s := open(t, Options{MaxBytes: maxBytes, MaxAge: 720 * time.Hour, DownsampleAfter: time.Hour,
		DownsampleInterval: time.Minute, Now: clk.Now})
	tags := []string{"LT-101", "PT-201"}
	const perMinute = 12 // samples per tag and minute
	const step = time.Minute / perMinute
	var rawBytes int64
	var firstMinute []float64                // LT-101's values in the first minute
	const days, perBatch = 4, 10 * perMinute // samples per tag in one write: ten minutes
	for b := range days * 24 * 6 {
		batch := samples(tags, t0.Add(time.Duration(b)*10*time.Minute), step, perBatch)
		for i := range batch {
			batch[i].Value = wave(b*perBatch*2 + i)
			if b == 0 && batch[i].Tag == "LT-101" && batch[i].Time.Before(t0.Add(time.Minute)) {
				firstMinute = append(firstMinute, batch[i].Value)
			}
		}
		before := s.Stats().Bytes
		if err := s.Write(batch); err != nil {
			t.Fatal(err)
		}
		rawBytes += s.Stats().Bytes - before
		clk.Add(10 * time.Minute)
		if s.overBytes() {
			if err := s.Enforce(); err != nil {
				t.Fatal(err)
			}
		}
		if st := s.Stats(); st.Bytes > maxBytes {
			t.Fatalf("batch %d: %d bytes of records, max %d", b, st.Bytes, maxBytes)
		}
	}
	st := s.Stats()
	t.Logf("raw would be %d bytes (%.1f per sample); holding %d bytes in a %d-byte file: %d raw, %d aggregates, %d downsampled",
		rawBytes, float64(rawBytes)/float64(days*24*60*perMinute*2), st.Bytes, st.FileSize, st.Raw, st.Aggregates, st.Downsampled)
	if rawBytes < 2*maxBytes {
		t.Fatalf("the test wrote only %d bytes raw: not past max_bytes", rawBytes)
	}
	if st.Deleted != 0 || st.Expired != 0 {
		t.Fatalf("records were deleted within max_age: %+v", st)
	}
	if st.Downsampled == 0 || st.Aggregates == 0 {
		t.Fatalf("nothing was downsampled: %+v", st)
	}
	if st.FileSize > 2*maxBytes+1<<20 {
		t.Errorf("file is %d bytes for %d bytes of records", st.FileSize, st.Bytes)
	}
	recs := all(t, s, "LT-101")
	first := recs[0]
	if !first.Aggregate() || !first.Time.Equal(t0) || first.Count != perMinute || first.Interval != time.Minute {
		t.Fatalf("first LT-101 record %+v, want the aggregate of the first minute", first)
	}
	mn, mx, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range firstMinute {
		mn, mx, sum = math.Min(mn, v), math.Max(mx, v), sum+v
	}
	if first.Min != mn || first.Max != mx || math.Abs(first.Value-sum/perMinute) > 1e-9 {
		t.Fatalf("first minute aggregate min/max/mean %v/%v/%v, want %v/%v/%v", first.Min, first.Max, first.Value, mn, mx, sum/perMinute)
	}
	// every minute of the four days is still represented, in order
	var samplesSeen uint32
	for i, r := range recs {
		if i > 0 && !r.Time.After(recs[i-1].Time) {
			t.Fatalf("records out of order at %d: %s after %s", i, r.Time, recs[i-1].Time)
		}
		samplesSeen += r.Count
	}
	if samplesSeen != days*24*60*perMinute {
		t.Fatalf("records account for %d samples of LT-101, wrote %d", samplesSeen, days*24*60*perMinute)
	}
	// the last hour (younger than downsample_after) is raw
	recent := 0
	for _, r := range recs {
		if !r.Time.Before(clk.Now().Add(-time.Hour)) {
			if r.Aggregate() {
				t.Fatalf("a record younger than downsample_after was aggregated: %+v", r)
			}
			recent++
		}
	}
	if recent != 60*perMinute {
		t.Fatalf("%d raw samples in the last hour, want %d", recent, 60*perMinute)
	}
}

// TestBytesBoundDeletesOldestLast: when even the aggregates do not fit,
// the oldest records go, the loss is counted and logged, and the newest
// data is intact.
func TestBytesBoundDeletesOldestLast(t *testing.T) {
	clk := &clock{t: t0}
	var logs bytes.Buffer
	const maxBytes = 12 << 10 // a day of these one-minute aggregates in chunks is about 14 KB
	s := open(t, Options{MaxBytes: maxBytes, MaxAge: 720 * time.Hour, DownsampleAfter: time.Hour,
		DownsampleInterval: time.Minute, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for m := range 24 * 60 {
		if err := s.Write(samples([]string{"LT-101"}, t0.Add(time.Duration(m)*time.Minute), 10*time.Second, 6)); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
		if s.overBytes() {
			if err := s.Enforce(); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := s.Stats()
	if st.Bytes > maxBytes || st.Deleted == 0 || st.Downsampled == 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "oldest records deleted within max_age") {
		t.Fatalf("the deletion was not logged:\n%s", logs.String())
	}
	recs := all(t, s, "LT-101")
	if recs[0].Time.Equal(t0) {
		t.Fatal("the oldest record is still there")
	}
	last := recs[len(recs)-1]
	if want := t0.Add(24*time.Hour - 10*time.Second); !last.Time.Equal(want) || last.Aggregate() {
		t.Fatalf("newest record %+v, want the raw sample of %s", last, want)
	}
}

// TestAgePrune: with an injected clock 35 days on, everything older than
// max_age (30 days) is gone and counted as expired, the rest is kept.
func TestAgePrune(t *testing.T) {
	clk := &clock{t: t0}
	s := open(t, Options{MaxAge: 30 * 24 * time.Hour, Now: clk.Now})
	// one sample per hour for 10 days, two tags
	if err := s.Write(samples([]string{"LT-101", "TT-102"}, t0, time.Hour, 240)); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(35 * 24 * time.Hour))
	if err := s.Enforce(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Expired != 2*120 || st.Raw != 2*120 || st.Deleted != 0 {
		t.Fatalf("stats after pruning %+v", st)
	}
	for _, tag := range []string{"LT-101", "TT-102"} {
		recs := all(t, s, tag)
		if len(recs) != 120 || !recs[0].Time.Equal(t0.Add(5*24*time.Hour)) {
			t.Fatalf("%s: %d records from %s, want 120 from day 5", tag, len(recs), recs[0].Time)
		}
	}
	// nothing more to do a second time
	if err := s.Enforce(); err != nil || s.Stats().Expired != st.Expired {
		t.Fatalf("second pass: %v %+v", err, s.Stats())
	}
}

// TestReopenAndLock: counters and records survive a reopen; a second
// opener (the export command beside a running gateway) gets ErrLocked.
func TestReopenAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(samples([]string{"A", "B"}, t0, time.Second, 100)); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open beside a writer: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Stats(); st.Raw != 200 || st.Bytes != before.Bytes {
		t.Fatalf("after reopen %+v, before %+v", st, before)
	}
	if tags, err := r.Tags(); err != nil || fmt.Sprint(tags) != "[A B]" {
		t.Fatalf("tags %v %v", tags, err)
	}
	if err := r.Write(samples([]string{"A"}, t0, time.Second, 1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on a read-only store: %v", err)
	}
}

// TestWriterDropsWhenFull: with the queue full, Offer returns at once and
// counts what it could not queue; a running writer writes the rest.
func TestWriterDropsWhenFull(t *testing.T) {
	s := open(t, Options{QueueBatches: 4, FlushEvery: 10 * time.Millisecond})
	w := NewWriter(s)
	batch := samples([]string{"LT-101"}, t0, time.Second, 10)
	start := time.Now()
	accepted := 0
	for i := range 1000 {
		for j := range batch {
			batch[j].Time = t0.Add(time.Duration(i*10+j) * time.Second)
		}
		if w.Offer(batch) {
			accepted++
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("1000 offers to a full queue took %s: Offer blocks", el)
	}
	if accepted != 4 {
		t.Fatalf("%d batches queued, want the queue's 4", accepted)
	}
	if st := w.Stats(); st.Dropped != 996*10 || st.Queued != 4 {
		t.Fatalf("stats %+v", st)
	}
	// the batches queued were copies: changing ours does not change theirs
	batch[0].Value = -1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	for i := range 100 {
		for j := range batch {
			batch[j].Time = t0.Add(time.Duration(100000+i*10+j) * time.Second)
		}
		for !w.Offer(batch) {
			time.Sleep(time.Millisecond) // the test, not the pipeline, waits for room
		}
	}
	cancel()
	<-done
	st := w.Stats()
	if st.Written != 1040 || s.Stats().Raw != 1040 {
		t.Fatalf("written %d, stored %d, want 1040 (%+v)", st.Written, s.Stats().Raw, st)
	}
	for _, r := range all(t, s, "LT-101") {
		if r.Value == -1 && r.Time.Before(t0.Add(100000*time.Second)) {
			t.Fatal("the writer kept the caller's slice instead of a copy")
		}
	}
}

// TestTrend: slices keep the extremes and the count-weighted mean of raw
// samples and aggregates alike, count bad samples apart, and start at the
// first record when it is later than asked.
func TestTrend(t *testing.T) {
	clk := &clock{t: t0}
	// two hours raw are about 31 KB in chunks, past max_bytes; the second
	// hour and the first's aggregates are under its 90 %
	s := open(t, Options{MaxBytes: 24 << 10, DownsampleAfter: time.Hour, DownsampleInterval: time.Minute, Now: clk.Now})
	// two hours at 1 s from t0+1h, values 0..7199, one bad
	var in []model.Sample
	for i := range 7200 {
		in = append(in, model.Sample{Tag: "LT-101", Value: float64(i), Time: t0.Add(time.Hour + time.Duration(i)*time.Second)})
	}
	in[100].Quality, in[100].Reason, in[100].Value = model.Bad, model.ReasonTimeout, 0
	if err := s.Write(in); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(3 * time.Hour)) // the first hour is older than downsample_after
	if err := s.Enforce(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Aggregates != 60 || st.Raw != 3600 {
		t.Fatalf("expected the first hour in 60 aggregates: %+v", st)
	}
	pts, start, err := Trend(s, "LT-101", t0, t0.Add(4*time.Hour), 4)
	if err != nil {
		t.Fatal(err)
	}
	if !start.Equal(t0.Add(time.Hour)) {
		t.Fatalf("trend starts at %s, want the first record at %s", start, t0.Add(time.Hour))
	}
	sum := func(a, b int) float64 { return float64(a+b) * float64(b-a+1) / 2 }
	want := []Point{
		{Min: 0, Max: 2699, Count: 2699, Bad: 1, Mean: (sum(0, 2699) - 100) / 2699},
		{Min: 2700, Max: 5399, Count: 2700, Mean: 4049.5},
		{Min: 5400, Max: 7199, Count: 1800, Mean: 6299.5},
	}
	if len(pts) != len(want) {
		t.Fatalf("%d points: %+v", len(pts), pts)
	}
	for i, p := range pts {
		w := want[i]
		if p.Min != w.Min || p.Max != w.Max || p.Count != w.Count || p.Bad != w.Bad || math.Abs(p.Mean-w.Mean) > 1e-9 {
			t.Errorf("point %d = %+v, want %+v", i, p, w)
		}
		if wantT := start.Add(time.Duration(i) * 45 * time.Minute); !p.Time.Equal(wantT) {
			t.Errorf("point %d at %s, want %s", i, p.Time, wantT)
		}
	}
}

// TestLongReadDoesNotStallWrites: an export holds one read transaction
// for as long as it streams. While it is open the writer must still grow
// the file and commit (bbolt would otherwise wait for the read to end
// before remapping, and history would drop samples meanwhile).
func TestLongReadDoesNotStallWrites(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("32-bit maps as it grows; a long export may delay history writes there")
	}
	s := open(t, Options{MaxBytes: 64 << 20})
	if err := s.Write(samples([]string{"LT-101"}, t0, time.Second, 10)); err != nil {
		t.Fatal(err)
	}
	inRead, release := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		first := true
		readDone <- s.Range("LT-101", t0, t0.Add(time.Hour), func(Record) error {
			if first {
				first = false
				close(inRead)
				<-release // an export stuck on a slow client
			}
			return nil
		})
	}()
	<-inRead
	before := s.Stats().FileSize
	writeDone := make(chan error, 1)
	go func() {
		tags := []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"}
		for i := range 20 {
			if err := s.Write(samples(tags, t0.Add(time.Duration(i)*time.Hour), 100*time.Millisecond, 2000)); err != nil {
				writeDone <- err
				return
			}
		}
		writeDone <- nil
	}()
	select {
	case err := <-writeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		close(release)
		t.Fatal("writes waited for the open read")
	}
	if after := s.Stats().FileSize; after <= before {
		t.Fatalf("the file did not grow (%d -> %d bytes): the test proves nothing", before, after)
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}

// TestWriterKeepsTheBound: the writer applies the byte bound by itself
// after a flush that went over it.
func TestWriterKeepsTheBound(t *testing.T) {
	clk := &clock{t: t0}
	const maxBytes = 512 << 10 // four days raw are about 690 KB in chunks
	s := open(t, Options{MaxBytes: maxBytes, DownsampleAfter: time.Hour, FlushEvery: 5 * time.Millisecond, QueueBatches: 4, Now: clk.Now})
	w := NewWriter(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	for b := range 4 * 24 * 6 { // four days of two tags every 10 s, ten minutes per batch
		clk.Set(t0.Add(time.Duration(b+1) * 10 * time.Minute))
		batch := samples([]string{"LT-101", "PT-201"}, t0.Add(time.Duration(b)*10*time.Minute), 10*time.Second, 60)
		for !w.Offer(batch) {
			time.Sleep(time.Millisecond) // the test waits for room; the pipeline would drop
		}
	}
	cancel()
	<-done
	if st := w.Stats(); st.Written != 4*24*60*6*2 || st.Failed != 0 {
		t.Fatalf("writer %+v", st)
	}
	st := s.Stats()
	// the last flush may go over until the next pass; one batch is 4 KB
	if st.Bytes > maxBytes+8<<10 || st.Downsampled == 0 || st.Deleted != 0 {
		t.Fatalf("store after the writer: %+v", st)
	}
}
