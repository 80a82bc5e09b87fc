package history

import (
	"fmt"
	"testing"
	"time"

	"hazgate/internal/model"
)

// TestWriterRoundGrowsWithTags: a few thousand tags are written every
// FlushEvery; more tags make the round longer in proportion (fewer
// transactions, each touching every tag's bucket once), up to maxRound,
// which is the crash-loss bound docs/history.md states.
func TestWriterRoundGrowsWithTags(t *testing.T) {
	w := NewWriter(open(t, Options{}))
	for _, c := range []struct {
		tags int
		want time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {1000, time.Second}, {1001, 2 * time.Second},
		{5000, 5 * time.Second}, {10_000, 10 * time.Second}, {50_000, maxRound}, {1_000_000, maxRound},
	} {
		if got := w.roundFor(c.tags); got != c.want {
			t.Errorf("round for %d tags: %v, want %v", c.tags, got, c.want)
		}
	}
	if got := roundSamples(50_000); got != 500_000 {
		t.Errorf("a round of 50 000 tags ends early at %d samples, want 500 000", got)
	}
	// a FlushEvery longer than maxRound is kept as it is
	slow := NewWriter(open(t, Options{FlushEvery: time.Minute}))
	if got := slow.roundFor(50_000); got != time.Minute {
		t.Errorf("FlushEvery 1m, 50 000 tags: round %v", got)
	}
}

// TestWriterSplitsLargeRounds: a round of more tags than one transaction
// takes is written as several, each tag whole in one of them, and every
// sample arrives, in order, including a repeated time whose later sample
// must win as it does in one transaction.
func TestWriterSplitsLargeRounds(t *testing.T) {
	s := open(t, Options{})
	w := NewWriter(s)
	tags := make([]string, 2*tagsPerTx+7)
	for i := range tags {
		tags[i] = fmt.Sprintf("TT-%05d", (i*7919)%len(tags)) // not in name order
	}
	round := samples(tags, t0, time.Second, 3)
	round = append(round, model.Sample{Tag: tags[5], Value: -42, Time: t0.Add(2 * time.Second)})
	if got := w.flush(round, &flusher{}); got != len(tags) {
		t.Fatalf("flush reports %d tags, want %d", got, len(tags))
	}
	st := w.Stats()
	if st.Flushes != 3 || st.Written != uint64(len(round)) || st.Failed != 0 {
		t.Fatalf("writer %+v, want 3 transactions of %d samples in all", st, len(round))
	}
	if got := s.Stats().Raw; got != uint64(3*len(tags)) {
		t.Fatalf("%d raw records, want %d", got, 3*len(tags))
	}
	for _, tag := range []string{tags[0], tags[5], tags[len(tags)-1]} {
		recs := all(t, s, tag)
		if len(recs) != 3 {
			t.Fatalf("%s: %d records, want 3", tag, len(recs))
		}
		for i, r := range recs {
			if !r.Time.Equal(t0.Add(time.Duration(i) * time.Second)) {
				t.Fatalf("%s: record %d at %v", tag, i, r.Time)
			}
		}
		if last := recs[2].Value; (tag == tags[5]) != (last == -42) {
			t.Fatalf("%s: last value %v: the later of two samples at one time must win", tag, last)
		}
	}
}
