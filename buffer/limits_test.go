package buffer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"hazgate/internal/model"
)

// seqSamples returns n samples with Value = seq and acquisition time
// t0 + seq seconds, for seqs first, first+1, ...
func seqSamples(n int, first uint64) []model.Sample {
	s := mkSamples(n, float64(first), t0.Add(time.Duration(first)*time.Second))
	return s
}

func gapEvents(recs []model.Record) []model.GapInfo {
	var out []model.GapInfo
	for _, r := range recs {
		if r.Event.Kind == model.Gap {
			if r.Event.Gap == nil {
				panic("gap event without GapInfo")
			}
			out = append(out, *r.Event.Gap)
		}
	}
	return out
}

// checkGapsCover checks that the gaps of stream, in order, cover exactly
// the seqs 1..lastMissing without overlap, with exact counts and times.
func checkGapsCover(t *testing.T, gaps []model.GapInfo, stream model.Stream, cause string, lastMissing uint64, seqTime func(uint64) time.Time) {
	t.Helper()
	next := uint64(1)
	for _, g := range gaps {
		if g.Stream != stream.String() {
			continue
		}
		if g.Cause != cause {
			t.Errorf("gap %+v: cause %q, want %q", g, g.Cause, cause)
		}
		if g.FirstSeq != next || g.LastSeq < g.FirstSeq || g.Count != g.LastSeq-g.FirstSeq+1 {
			t.Fatalf("gap %+v: want a contiguous range starting at %d with an exact count", g, next)
		}
		if seqTime != nil && (!g.From.Equal(seqTime(g.FirstSeq)) || !g.To.Equal(seqTime(g.LastSeq))) {
			t.Errorf("gap %+v: times, want %v..%v", g, seqTime(g.FirstSeq), seqTime(g.LastSeq))
		}
		next = g.LastSeq + 1
	}
	if next-1 != lastMissing {
		t.Fatalf("gaps of %s cover 1..%d, but 1..%d are missing", stream, next-1, lastMissing)
	}
}

func TestSizeLimitDropsOldestTelemetryKeepsEvents(t *testing.T) {
	const maxBytes = 64 << 10
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{MaxBytes: maxBytes})
	var events []model.Event
	for i := range 5 {
		events = append(events, mkEvent("alarm "+string(rune('A'+i)), t0))
	}
	appendT(t, b, events, nil)

	var next uint64 = 1
	for range 60 { // about 3x the limit
		appendT(t, b, nil, seqSamples(100, next))
		next += 100
		if st := b.Stats(); st.Bytes > maxBytes {
			t.Fatalf("stored bytes %d over the limit %d after a commit", st.Bytes, maxBytes)
		}
	}
	newest := next - 1

	data := readAll(t, b, model.StreamData)
	if len(data) == 0 {
		t.Fatal("all data dropped")
	}
	oldest := data[0].Seq
	if !equalSeqs(seqs(data), seqRange(oldest, newest)) {
		t.Fatalf("kept data is not the newest contiguous range ending at %d", newest)
	}
	for _, r := range data {
		if r.Sample.Value != float64(r.Seq) {
			t.Fatalf("seq %d holds value %v", r.Seq, r.Sample.Value)
		}
	}
	if oldest <= 1 {
		t.Fatal("nothing was dropped")
	}

	evs := readAll(t, b, model.StreamEvent)
	for i, e := range events {
		if evs[i].Seq != uint64(i+1) || evs[i].Event.Message != e.Message {
			t.Fatalf("event %d lost or changed: %+v", i+1, evs[i])
		}
	}
	gaps := gapEvents(evs)
	if len(gaps) == 0 || len(gaps) >= 60 {
		t.Fatalf("%d gap events; want some, and hysteresis should keep them fewer than commits", len(gaps))
	}
	checkGapsCover(t, gaps, model.StreamData, CauseSizeLimit, oldest-1, func(seq uint64) time.Time {
		return t0.Add(time.Duration(seq) * time.Second).Add(time.Duration(seq-1) % 100 * 0)
	})
	st := b.Stats()
	if st.Data.Dropped != oldest-1 || st.Event.Dropped != 0 || st.Dropped != oldest-1 {
		t.Errorf("dropped counters %+v, want data %d", st, oldest-1)
	}
	if st.Event.Records != uint64(len(evs)) || st.Data.Records != uint64(len(data)) {
		t.Errorf("record counts %+v", st)
	}
	if float64(st.Bytes) < 0.8*maxBytes {
		t.Errorf("stored %d bytes: dropped far more than needed", st.Bytes)
	}
	for _, r := range evs[5:] {
		if r.Event.Message == "" || r.Event.Kind != model.Gap {
			t.Errorf("unexpected event %+v", r.Event)
		}
		if v, _ := appendEvent(nil, &r.Event); 8+len(v) > gapEventReserve {
			t.Errorf("gap event of %d bytes exceeds gapEventReserve", 8+len(v))
		}
	}
	t.Logf("kept %d..%d, %d gap events, e.g. %q", oldest, newest, len(gaps), evs[5].Event.Message)
}

func TestSizeLimitDropsEventsOnlyAsLastResort(t *testing.T) {
	const maxBytes = 8 << 10
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{MaxBytes: maxBytes})
	appendT(t, b, nil, seqSamples(10, 1))
	var events []model.Event
	for i := range 100 {
		events = append(events, mkEvent("alarm", t0.Add(time.Duration(i)*time.Second)))
	}
	appendT(t, b, events, nil)

	if got := readAll(t, b, model.StreamData); len(got) != 0 {
		t.Fatalf("%d data records kept while events were dropped", len(got))
	}
	evs := readAll(t, b, model.StreamEvent)
	var dataGap, eventGap *model.GapInfo
	for _, g := range gapEvents(evs) {
		switch g.Stream {
		case "data":
			dataGap = &g
		case "event":
			eventGap = &g
		}
	}
	if dataGap == nil || dataGap.Count != 10 || dataGap.FirstSeq != 1 || dataGap.LastSeq != 10 {
		t.Fatalf("data gap %+v, want all 10", dataGap)
	}
	if eventGap == nil || eventGap.FirstSeq != 1 || eventGap.Cause != CauseSizeLimit {
		t.Fatalf("event gap %+v", eventGap)
	}
	// The events kept are the newest, contiguous up to the gap events.
	if evs[0].Seq != eventGap.LastSeq+1 {
		t.Fatalf("oldest kept event %d, gap ends at %d", evs[0].Seq, eventGap.LastSeq)
	}
	if st := b.Stats(); st.Bytes > maxBytes || st.Event.Dropped != eventGap.Count {
		t.Fatalf("stats %+v", st)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func TestAgeLimit(t *testing.T) {
	clock := &fakeClock{now: t0}
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{MaxAge: time.Hour, Now: clock.Now})
	// One sample per minute, t0 .. t0+119min; an old event.
	samples := mkSamples(120, 1, t0)
	for i := range samples {
		samples[i].Time = t0.Add(time.Duration(i) * time.Minute)
	}
	old := mkEvent("old alarm", t0.Add(-24*time.Hour))
	clock.Set(t0.Add(119 * time.Minute))
	appendT(t, b, []model.Event{old}, samples)
	// Cutoff t0+59min: samples at t0..t0+58min (seqs 1..59) are too old.
	data := readAll(t, b, model.StreamData)
	if !equalSeqs(seqs(data), seqRange(60, 120)) {
		t.Fatalf("kept %v, want 60..120", seqs(data))
	}
	evs := readAll(t, b, model.StreamEvent)
	if evs[0].Event.Message != "old alarm" {
		t.Fatal("the age limit dropped an event")
	}
	gaps := gapEvents(evs)
	checkGapsCover(t, gaps, model.StreamData, CauseAgeLimit, 59, func(seq uint64) time.Time {
		return t0.Add(time.Duration(seq-1) * time.Minute)
	})

	// Time passes; the next commit (an ack-only one too) drops more.
	clock.Set(t0.Add(150 * time.Minute))
	b.Ack(model.StreamEvent, 1, 1)
	waitFor(t, "age drop", func() bool { return b.Stats().Data.OldestSeq == 91 })
	settle(t, b)
	evs = readAll(t, b, model.StreamEvent)
	checkGapsCover(t, gapEvents(evs), model.StreamData, CauseAgeLimit, 90, nil)
	if st := b.Stats(); st.Data.Dropped != 90 || !st.Data.OldestTime.Equal(t0.Add(90*time.Minute)) {
		t.Fatalf("stats %+v", st.Data)
	}
}

// A file ceiling far below MaxBytes forces bbolt's ErrMaxSizeReached; the
// buffer must make room by dropping telemetry and keep accepting appends.
func TestFileSizeCeilingDropsTelemetry(t *testing.T) {
	b, err := open(filepath.Join(t.TempDir(), "buf.db"), Options{MaxBytes: 1 << 30, Logger: testLogger(t)}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	appendT(t, b, []model.Event{mkEvent("keep me", t0)}, nil)
	var next uint64 = 1
	for range 100 {
		if err := b.Append(context.Background(), nil, seqSamples(500, next)); err != nil {
			t.Fatalf("Append at seq %d: %v", next, err)
		}
		next += 500
	}
	st := b.Stats()
	// The emergency drop commit may grow the file by one bbolt growth step.
	if st.FileSize > 2<<20 {
		t.Fatalf("file %d bytes over the ceiling", st.FileSize)
	}
	if st.Data.Dropped == 0 {
		t.Fatal("nothing dropped")
	}
	evs := readAll(t, b, model.StreamEvent)
	if evs[0].Event.Message != "keep me" {
		t.Fatal("event lost")
	}
	data := readAll(t, b, model.StreamData)
	checkGapsCover(t, gapEvents(evs), model.StreamData, CauseSizeLimit, data[0].Seq-1, nil)
	if !slices.Equal(seqs(data), seqRange(data[0].Seq, next-1)) {
		t.Fatal("kept data not contiguous up to the newest")
	}
	t.Logf("file %d bytes, kept %d records, dropped %d", st.FileSize, st.Data.Records, st.Data.Dropped)
}

// TestClockStepForwardDoesNotAgeTheBacklog: the wall clock jumps a day
// ahead (an NTP correction on a box that booted with a wrong clock). The
// backlog stamped before the jump did not age, and the buffer must not drop
// it as too old; nor may the step reorder anything. A step back needs no
// allowance. Once the data stream runs empty, the allowance ends.
func TestClockStepForwardDoesNotAgeTheBacklog(t *testing.T) {
	clock := &fakeClock{now: t0}
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{MaxAge: 24 * time.Hour, Now: clock.Now})
	before := mkSamples(100, 1, t0)
	appendT(t, b, nil, before)

	// Back one hour: records stamped earlier than the ones before them.
	clock.Set(t0.Add(-time.Hour))
	b.ClockStepped(-time.Hour)
	appendT(t, b, nil, mkSamples(100, 1, t0.Add(-time.Hour)))
	// Forward one day.
	clock.Set(t0.Add(25 * time.Hour))
	b.ClockStepped(25 * time.Hour)
	appendT(t, b, nil, mkSamples(100, 1, t0.Add(25*time.Hour)))

	data := readAll(t, b, model.StreamData)
	if !equalSeqs(seqs(data), seqRange(1, 300)) {
		t.Fatalf("after the steps the buffer holds %v, want 1..300 in order", summarizeSeqs(seqs(data)))
	}
	if st := b.Stats(); st.Data.Dropped != 0 {
		t.Fatalf("%d records dropped by a clock step", st.Data.Dropped)
	}

	// Without the allowance (data stream emptied) the age limit is the
	// plain one again.
	b.Ack(model.StreamData, 1, 300)
	waitFor(t, "empty data stream", func() bool { return b.Stats().Data.Records == 0 })
	appendT(t, b, nil, mkSamples(10, 1, t0)) // stamped 25 h ago by the clock now
	waitFor(t, "age drop after the allowance ended", func() bool { return b.Stats().Data.Dropped == 10 })
}

func summarizeSeqs(s []uint64) string {
	if len(s) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d records, %d..%d", len(s), s[0], s[len(s)-1])
}

// TestDroppedGapEventIsReportedAgain: when events have to go too (no
// telemetry left), the oldest events may be gap events themselves. What
// they reported must not go with them: the data range 1..10 dropped by an
// earlier commit, and the event numbers an earlier event gap covered, are
// reported again, so every missing number stays covered.
func TestDroppedGapEventIsReportedAgain(t *testing.T) {
	const maxBytes = 8 << 10
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{MaxBytes: maxBytes})
	appendT(t, b, nil, seqSamples(10, 1))
	for round := range 3 { // each round pushes the earlier gap events out
		var events []model.Event
		for i := range 100 {
			events = append(events, mkEvent("alarm", t0.Add(time.Duration(round*100+i)*time.Second)))
		}
		appendT(t, b, events, nil)
	}
	evs := readAll(t, b, model.StreamEvent)
	gaps := gapEvents(evs)
	checkGapsCover(t, gaps, model.StreamData, CauseSizeLimit, 10, nil)
	var eventGaps []model.GapInfo
	for _, g := range gaps {
		if g.Stream == "event" {
			eventGaps = append(eventGaps, g)
		}
	}
	// Event numbers: every one below the oldest kept is covered.
	covered := map[uint64]bool{}
	for _, g := range eventGaps {
		for seq := g.FirstSeq; seq <= g.LastSeq; seq++ {
			covered[seq] = true
		}
	}
	for seq := uint64(1); seq < evs[0].Seq; seq++ {
		if !covered[seq] {
			t.Fatalf("event %d is gone and no gap event covers it (kept from %d; event gaps %+v)", seq, evs[0].Seq, eventGaps)
		}
	}
	if st := b.Stats(); st.Bytes > maxBytes {
		t.Fatalf("stats %+v", st)
	}
}
