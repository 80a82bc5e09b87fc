package buffer

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"hazgate/internal/model"
)

// TestAppendWithdrawnOnTimeout: while the writer is stuck on a commit (a
// stalled disk; here a write transaction the test holds), an Append whose
// context ends is withdrawn: it says its records are not stored, and they
// are not, so the caller's retry stores them once. Before, the request
// stayed queued: every retry queued one more copy (memory without bound),
// and all of them were committed, under new sequence numbers, once the
// disk came back.
func TestAppendWithdrawnOnTimeout(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buffer.db"), Options{})
	tx, err := b.db.Begin(true) // the writer's next commit waits for it
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- b.Append(context.Background(), []model.Event{mkEvent("held up", t0)}, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for { // until the writer has taken the first request
		b.mu.Lock()
		taken := len(b.pending) == 0
		b.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the first append")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // well inside its commit now

	samples := mkSamples(10, 0, t0)
	for range 3 { // a caller retrying against the stalled disk
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := b.Append(ctx, nil, samples)
		cancel()
		if !errors.Is(err, ErrNotStored) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("append during the stall: %v, want ErrNotStored and the deadline", err)
		}
	}
	_ = tx.Rollback() // the disk is back
	if err := <-first; err != nil {
		t.Fatalf("the first append: %v", err)
	}
	appendT(t, b, nil, samples) // the retry that succeeds
	if n := len(readAll(t, b, model.StreamData)); n != len(samples) {
		t.Errorf("%d samples stored, want %d: once, not once per attempt", n, len(samples))
	}
	if n := len(readAll(t, b, model.StreamEvent)); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
}

// TestReadStopsAtTheDurableCommit: bbolt shows a commit to readers as
// soon as its meta page is written, before that page is fsynced. Read
// stops below the numbers of the last commit that returned, so the uplink
// never publishes a record that a power loss could still take back. Here
// the last commit (6..10) is made to look as if it had not returned yet.
func TestReadStopsAtTheDurableCommit(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buffer.db"), Options{})
	appendT(t, b, nil, mkSamples(5, 0, t0))
	appendT(t, b, nil, mkSamples(5, 5, t0))
	b.durable[model.StreamData].Store(6)
	if got := seqs(readAll(t, b, model.StreamData)); !equalSeqs(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("read %v before the second commit returned, want 1..5", got)
	}
	b.durable[model.StreamData].Store(11)
	if got := seqs(readAll(t, b, model.StreamData)); len(got) != 10 {
		t.Errorf("read %v after it, want 1..10", got)
	}
}

// TestDamagedQueuedOnce: while commits fail, every Read finds the same
// damaged records again; each is queued for removal once, not once per
// Read (memory growing with every poll of the uplink).
func TestDamagedQueuedOnce(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "buffer.db"), Options{})
	refs := []recordRef{{stream: model.StreamData, seq: 7}, {stream: model.StreamEvent, seq: 7}}
	b.mu.Lock()
	for range 100 {
		b.queueDamaged(refs)
	}
	n := len(b.damaged)
	b.mu.Unlock()
	if n != 2 {
		t.Errorf("%d damaged refs queued, want 2", n)
	}
}
