package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/history"
	"hazgate/internal/model"
	"hazgate/rules"
)

// TestHistoryNeverHoldsThePipeline: with a history writer that never
// writes (its queue of one batch is full at once), the pipeline still
// commits every sample to the buffer, and what history could not take is
// counted as dropped, not waited for.
func TestHistoryNeverHoldsThePipeline(t *testing.T) {
	const tags, polls = 50, 100
	cfg := benchConfig(t, tags, "tcp://127.0.0.1:1")
	buf, err := buffer.Open(filepath.Join(cfg.Gateway.DataDir, BufferFile), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	hs, err := history.Open(filepath.Join(cfg.Gateway.DataDir, HistoryFile), history.Options{QueueBatches: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	w := history.NewWriter(hs) // not run: a history disk that has stopped
	pipe := newPipeline(rules.New(cfg), buf, discardLogger())
	pipe.toHistory = func(s []model.Sample) { w.Offer(s) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.run(ctx) }()
	for k := range polls {
		s := make([]model.Sample, tags)
		for i := range s {
			s[i] = model.Sample{Tag: fmt.Sprintf("TT-%d", i), Device: "plc", Value: 50, Time: time.Now().UTC()}
		}
		if err := pipe.Submit(ctx, s); err != nil {
			t.Fatalf("poll %d: %v", k, err)
		}
		// one commit per poll, so history is offered every one
		deadline := time.Now().Add(30 * time.Second)
		for buf.Stats().Data.Records < uint64(tags*(k+1)) {
			if time.Now().After(deadline) {
				t.Fatalf("poll %d: only %d samples reached the buffer", k, buf.Stats().Data.Records)
			}
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Queued != 1 || st.Dropped != tags*(polls-1) {
		t.Fatalf("history queued %d batches and dropped %d samples; want 1 batch queued and %d dropped", st.Queued, st.Dropped, tags*(polls-1))
	}
}
