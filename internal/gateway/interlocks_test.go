package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
	"hazgate/rules/interlock"
)

// recordingWriter is an in-test drivers.Writer.
type recordingWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *recordingWriter) Write(ctx context.Context, tag string, v float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, tag)
	return nil
}

func (w *recordingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

// TestTripDoesNotWaitForTheDisk stalls every buffer append: the
// interlock must still trip and write, and the events must reach the
// buffer once the disk is back; an operator request is answered only
// after its event is durable.
func TestTripDoesNotWaitForTheDisk(t *testing.T) {
	zero := 0.0
	cfg := &config.Config{
		Devices: []config.Device{{Name: "PLC-1", CommLossAfter: config.Duration(time.Hour), Tags: []config.Tag{
			{Name: "LT-101", Kind: config.KindLevel},
			{Name: "XV-101", Kind: config.KindDigital, Type: config.TypeBool, Writable: true},
		}}},
		Interlocks: []config.Interlock{{Name: "IL-101", Condition: "LT-101 >= 18.5", BadQuality: config.BadTrip,
			BypassMax: config.DefaultBypassMax, Actions: []config.Action{{Tag: "XV-101", Value: &zero}}}},
	}
	p := newPipeline(rules.New(cfg), nil, discardLogger())
	release := make(chan struct{})
	var mu sync.Mutex
	var stored []model.Event
	p.append = func(ctx context.Context, events []model.Event, samples []model.Sample) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		stored = append(stored, events...)
		mu.Unlock()
		return nil
	}
	engine, err := interlock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &recordingWriter{}
	act := interlock.NewActuator(map[string]drivers.Writer{"XV-101": w}, interlock.ActuatorOptions{})
	p.locks = pipeLocks{engine: engine, act: act, ops: make(chan operatorRequest)}
	g := &Gateway{pipe: p}

	ctx, cancel := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.run(ctx) }()
	actCtx, stopAct := context.WithCancel(context.Background())
	actDone := make(chan error, 1)
	go func() { actDone <- act.Run(actCtx) }()

	now := time.Now()
	// First poll: normal; its commit stalls.
	if err := p.Submit(ctx, []model.Sample{{Tag: "LT-101", Value: 10, Time: now}}); err != nil {
		t.Fatal(err)
	}
	// Second poll: above the limit, while the disk is stuck.
	if err := p.Submit(ctx, []model.Sample{{Tag: "LT-101", Value: 19, Time: now.Add(100 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no write within 10 s while the disk was stalled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The actuator may write before the pipeline has published the status
	// of the same loop turn (seen under qemu): wait for it, briefly.
	waitUntil(t, 5*time.Second, "the trip in the interlock status", func() bool {
		st := g.Interlocks()
		return len(st) == 1 && st[0].Tripped
	})
	// An operator request waits for durability: not answered while stalled.
	resetErr := make(chan error, 1)
	go func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		resetErr <- g.Bypass(rctx, "IL-101", "op", "test", time.Minute)
	}()
	select {
	case err := <-resetErr:
		t.Fatalf("answered before the event was durable: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-resetErr; err != nil {
		t.Fatal(err)
	}
	kinds := map[model.EventKind]bool{}
	deadline = time.Now().Add(10 * time.Second)
	for !(kinds[model.InterlockTripped] && kinds[model.InterlockAction] && kinds[model.BypassOn]) {
		if time.Now().After(deadline) {
			t.Fatalf("events stored: %v", kinds)
		}
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		for _, e := range stored {
			kinds[e.Kind] = true
		}
		mu.Unlock()
	}
	stopAct()
	<-actDone
	cancel()
	if err := <-pipeDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
