package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/model"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func openT(t testing.TB, path string, opts Options) *Buffer {
	t.Helper()
	b, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// mkSamples returns n samples whose Value is first, first+1, ... and whose
// acquisition times are one second apart from start.
func mkSamples(n int, first float64, start time.Time) []model.Sample {
	s := make([]model.Sample, n)
	for i := range s {
		s[i] = model.Sample{
			Tag:     fmt.Sprintf("LT-%03d", i%50),
			Device:  "plc-1",
			Value:   first + float64(i),
			Quality: model.Good,
			Time:    start.Add(time.Duration(i) * time.Second),
		}
	}
	return s
}

func mkEvent(msg string, at time.Time) model.Event {
	return model.Event{Kind: model.AlarmRaised, Time: at, Tag: "LT-001", Level: model.LevelHH, Value: model.Float(9.5), Limit: model.Float(9), Message: msg}
}

func appendT(t testing.TB, b *Buffer, events []model.Event, samples []model.Sample) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Append(ctx, events, samples); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func readAll(t testing.TB, b *Buffer, s model.Stream) []model.Record {
	t.Helper()
	var all []model.Record
	after := uint64(0)
	for range 100000 {
		recs, err := b.Read(s, after, 1000)
		if err != nil {
			t.Fatalf("Read(%s, %d): %v", s, after, err)
		}
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
		after = recs[len(recs)-1].Seq
	}
	t.Fatal("readAll did not end")
	return nil
}

func seqs(recs []model.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func seqRange(first, last uint64) []uint64 {
	var out []uint64
	for s := first; s <= last; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitFor polls cond for up to 5 s: acks are applied asynchronously.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle waits until the writer's last commit has returned. Stats may
// see a commit while bbolt still fsyncs it; Read shows its records only
// after (TestReadStopsAtTheDurableCommit).
func settle(t testing.TB, b *Buffer) {
	t.Helper()
	waitFor(t, "the last commit to return", func() bool {
		st := b.Stats()
		return b.durable[model.StreamEvent].Load() == st.Event.NextSeq && b.durable[model.StreamData].Load() == st.Data.NextSeq
	})
}

func TestSequencesPerStreamAndRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buf.db")
	b := openT(t, path, Options{})
	ev := []model.Event{mkEvent("tank 1 high high", t0), mkEvent("tank 2 high high", t0.Add(time.Second))}
	sm := mkSamples(3, 10, t0)
	sm[1].Quality, sm[1].Reason = model.Bad, model.ReasonTimeout
	appendT(t, b, ev, sm)
	appendT(t, b, nil, mkSamples(2, 13, t0.Add(time.Minute)))

	gotEv := readAll(t, b, model.StreamEvent)
	if !equalSeqs(seqs(gotEv), []uint64{1, 2}) {
		t.Fatalf("event seqs %v, want [1 2]", seqs(gotEv))
	}
	for i, r := range gotEv {
		if r.Stream != model.StreamEvent || r.Event.Message != ev[i].Message || !r.Event.Time.Equal(ev[i].Time) || *r.Event.Value != 9.5 {
			t.Errorf("event %d = %+v, want %+v", i, r.Event, ev[i])
		}
	}
	gotData := readAll(t, b, model.StreamData)
	if !equalSeqs(seqs(gotData), []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("data seqs %v, want 1..5", seqs(gotData))
	}
	for i, r := range gotData[:3] {
		w := sm[i]
		g := r.Sample
		if g.Tag != w.Tag || g.Device != w.Device || g.Value != w.Value || g.Quality != w.Quality || g.Reason != w.Reason || !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("sample %d = %+v, want %+v", i, g, w)
		}
	}
	if gotData[3].Sample.Value != 13 {
		t.Errorf("seq 4 value %v, want 13", gotData[3].Sample.Value)
	}

	// after and max.
	recs, err := b.Read(model.StreamData, 2, 2)
	if err != nil || !equalSeqs(seqs(recs), []uint64{3, 4}) {
		t.Fatalf("Read(data, 2, 2) = %v, %v; want [3 4]", seqs(recs), err)
	}
	if recs, _ := b.Read(model.StreamData, 5, 10); len(recs) != 0 {
		t.Fatalf("Read after the newest = %v", seqs(recs))
	}
	if _, err := b.Read(model.Stream(9), 0, 10); err == nil {
		t.Fatal("Read of an unknown stream succeeded")
	}

	st := b.Stats()
	if st.Data.Records != 5 || st.Data.OldestSeq != 1 || st.Data.NewestSeq != 5 || st.Data.NextSeq != 6 || !st.Data.OldestTime.Equal(t0) {
		t.Errorf("data stats %+v", st.Data)
	}
	if st.Event.Records != 2 || st.Event.NextSeq != 3 || st.Commits != 2 || st.Bytes <= 0 || st.FileSize <= 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSequencesSurviveReopenAndDeletingEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buf.db")
	b := openT(t, path, Options{})
	appendT(t, b, []model.Event{mkEvent("a", t0)}, mkSamples(10, 1, t0))
	b.Ack(model.StreamData, 1, 10)
	b.Ack(model.StreamEvent, 1, 1)
	if err := b.Close(); err != nil { // Close applies pending acks.
		t.Fatal(err)
	}
	if err := b.Append(context.Background(), nil, mkSamples(1, 0, t0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}

	b = openT(t, path, Options{})
	st := b.Stats()
	if st.Data.Records != 0 || st.Event.Records != 0 || st.Bytes != 0 {
		t.Fatalf("after acking everything: %+v", st)
	}
	if st.Data.NextSeq != 11 || st.Event.NextSeq != 2 {
		t.Fatalf("next seqs %d/%d, want 11/2", st.Data.NextSeq, st.Event.NextSeq)
	}
	appendT(t, b, []model.Event{mkEvent("b", t0)}, mkSamples(2, 11, t0))
	if got := seqs(readAll(t, b, model.StreamData)); !equalSeqs(got, []uint64{11, 12}) {
		t.Fatalf("data after reopen %v, want [11 12]", got)
	}
	if got := seqs(readAll(t, b, model.StreamEvent)); !equalSeqs(got, []uint64{2}) {
		t.Fatalf("events after reopen %v, want [2]", got)
	}
}

func TestAckDeletesRangesWithHoles(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{})
	appendT(t, b, nil, mkSamples(20, 1, t0))
	b.Ack(model.StreamData, 3, 5)
	b.Ack(model.StreamData, 10, 12)
	waitFor(t, "acks", func() bool { return b.Stats().Data.Records == 14 })
	want := append(append(seqRange(1, 2), seqRange(6, 9)...), seqRange(13, 20)...)
	if got := seqs(readAll(t, b, model.StreamData)); !equalSeqs(got, want) {
		t.Fatalf("after acks %v, want %v", got, want)
	}
	// A range over holes, gone records and seqs never written.
	b.Ack(model.StreamData, 4, 15)
	b.Ack(model.StreamData, 1000, 2000)
	b.Ack(model.StreamData, 7, 3) // reversed: ignored
	b.Ack(model.StreamEvent, 1, 100)
	waitFor(t, "acks over holes", func() bool { return b.Stats().Data.Records == 7 })
	want = append(seqRange(1, 2), seqRange(16, 20)...)
	if got := seqs(readAll(t, b, model.StreamData)); !equalSeqs(got, want) {
		t.Fatalf("after ack over holes %v, want %v", got, want)
	}
	// Acks of future seqs must not delete records appended later.
	appendT(t, b, nil, mkSamples(1, 0, t0))
	if got := seqs(readAll(t, b, model.StreamData)); got[len(got)-1] != 21 {
		t.Fatalf("newest %v, want 21", got)
	}
	st := b.Stats()
	if st.Data.OldestSeq != 1 || st.Data.NewestSeq != 21 || st.Data.Records != 8 {
		t.Fatalf("stats %+v", st.Data)
	}
	// Bytes must be exact: acking everything brings them to zero.
	b.Ack(model.StreamData, 1, 21)
	waitFor(t, "ack all", func() bool { s := b.Stats(); return s.Data.Records == 0 && s.Bytes == 0 })
}

func TestNotify(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{})
	select {
	case <-b.Notify():
		t.Fatal("notified before any commit")
	default:
	}
	appendT(t, b, nil, mkSamples(1, 1, t0))
	select {
	case <-b.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after a commit that added records")
	}
	// Commits that only delete do not notify.
	b.Ack(model.StreamData, 1, 1)
	waitFor(t, "ack", func() bool { return b.Stats().Data.Records == 0 })
	select {
	case <-b.Notify():
		t.Fatal("notified after an ack-only commit")
	case <-time.After(50 * time.Millisecond):
	}
	// Many commits, nobody listening: sends never block.
	for i := range 5 {
		appendT(t, b, nil, mkSamples(1, float64(i), t0))
	}
	if len(b.Notify()) != 1 {
		t.Fatalf("notify channel holds %d, want 1", len(b.Notify()))
	}
}

func TestGroupCommit(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{})
	const workers, perWorker, batch = 16, 40, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := float64(w*1_000_000 + i*batch)
				if err := b.Append(context.Background(), nil, mkSamples(batch, id, t0)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	appends := uint64(workers * perWorker)
	st := b.Stats()
	t.Logf("%d appends in %d commits", appends, st.Commits)
	if st.Commits*3 > appends {
		t.Errorf("%d commits for %d concurrent appends: not group-committed", st.Commits, appends)
	}
	recs := readAll(t, b, model.StreamData)
	if len(recs) != workers*perWorker*batch {
		t.Fatalf("%d records, want %d", len(recs), workers*perWorker*batch)
	}
	seen := map[float64]bool{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if seen[r.Sample.Value] {
			t.Fatalf("value %v stored twice", r.Sample.Value)
		}
		seen[r.Sample.Value] = true
	}
	// Each append's samples are contiguous and in order.
	for i := 0; i < len(recs); i += batch {
		for j := 1; j < batch; j++ {
			if recs[i+j].Sample.Value != recs[i].Sample.Value+float64(j) {
				t.Fatalf("append split or reordered at seq %d", recs[i+j].Seq)
			}
		}
	}
}

func TestAppendContextAndClose(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buf.db"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Append(ctx, nil, mkSamples(1, 1, t0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled ctx = %v", err)
	}
	if err := b.Append(context.Background(), []model.Event{{Kind: model.AlarmRaised, Value: model.Float(nanValue())}}, nil); err == nil {
		t.Fatal("Append of an event that cannot be encoded succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b.Ack(model.StreamData, 1, 1) // must not panic or block
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buf.db")
	openT(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open = %v, want a clear lock error", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("lock wait %v, want about 1s", d)
	}
	if _, _, err := OpenOrRecover(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenOrRecover on a locked file = %v; it must not move a file that is merely locked", err)
	}
}

// testLogger sends the buffer's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
