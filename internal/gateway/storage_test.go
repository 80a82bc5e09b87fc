package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
	"hazgate/rules/interlock"
)

// TestStorageFaultKeepsInterlocksRunning: the buffer's file system goes
// read-only. Polls keep being taken (Submit never blocks), the interlock
// still trips and writes, memory stays bounded by dropping the oldest
// samples, and once the disk is back the platform's record says exactly
// what happened: a storage_fault, the trip, and a storage_restored that
// counts the samples lost.
func TestStorageFaultKeepsInterlocksRunning(t *testing.T) {
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
	var (
		mu       sync.Mutex
		readOnly = true
		attempts int
		events   []model.Event
		samples  []model.Sample
	)
	p.append = func(ctx context.Context, evs []model.Event, ss []model.Sample) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if readOnly {
			return fmt.Errorf("commit: %w", syscall.EROFS)
		}
		events = append(events, evs...)
		samples = append(samples, ss...)
		return nil
	}
	engine, err := interlock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &recordingWriter{}
	act := interlock.NewActuator(map[string]drivers.Writer{"XV-101": w}, interlock.ActuatorOptions{})
	p.locks = pipeLocks{engine: engine, act: act, ops: make(chan operatorRequest)}

	ctx, cancel := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.run(ctx) }()
	actCtx, stopAct := context.WithCancel(context.Background())
	actDone := make(chan error, 1)
	go func() { actDone <- act.Run(actCtx) }()
	defer func() { stopAct(); <-actDone }()

	// More samples than memory holds, all below the limit, then one above.
	const polls, perPoll = 300, 1000
	start := time.Now().Add(-time.Hour)
	submitted := 0
	for i := 0; i < polls; i++ {
		batch := make([]model.Sample, perPoll)
		for j := range batch {
			batch[j] = model.Sample{Tag: "LT-101", Value: 10, Time: start.Add(time.Duration(submitted) * time.Millisecond)}
			submitted++
		}
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		if err := p.Submit(sctx, batch); err != nil {
			t.Fatalf("poll %d blocked while the disk was read-only: %v", i, err)
		}
		scancel()
	}
	last := model.Sample{Tag: "LT-101", Value: 19, Time: start.Add(time.Duration(submitted) * time.Millisecond)}
	if err := p.Submit(ctx, []model.Sample{last}); err != nil {
		t.Fatal(err)
	}
	submitted++
	waitUntil(t, 10*time.Second, "interlock write with the disk read-only", func() bool { return w.count() > 0 })
	if _, cs := (&Gateway{pipe: p}).Latest(); cs.Err == nil || !errors.Is(cs.Err, syscall.EROFS) {
		t.Errorf("last commit status %v, want the read-only error (healthz reads it)", cs.Err)
	}
	waitUntil(t, 10*time.Second, "a few retries", func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 2 })

	mu.Lock()
	readOnly = false
	mu.Unlock()
	waitUntil(t, 10*time.Second, "storage_restored stored", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Kind == model.StorageRestored {
				return true
			}
		}
		return false
	})
	cancel()
	if err := <-pipeDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	var restored model.Event
	for _, e := range events {
		kinds = append(kinds, string(e.Kind))
		if e.Kind == model.StorageRestored {
			restored = e
		}
	}
	got := strings.Join(kinds, " ")
	for _, want := range []string{"storage_fault", "interlock_tripped", "storage_restored"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored events %q lack %s", got, want)
		}
	}
	if len(samples) > maxPendingSamples+perPoll || len(samples) < maxPendingSamples/2 {
		t.Errorf("%d samples stored of %d, want about the bound %d", len(samples), submitted, maxPendingSamples)
	}
	if len(samples) == 0 || samples[len(samples)-1] != last {
		t.Errorf("the newest sample was not kept")
	}
	lost := submitted - len(samples)
	if want := fmt.Sprintf("lost meanwhile: %d samples", lost); !strings.Contains(restored.Message, want) {
		t.Errorf("storage_restored says %q, want it to contain %q", restored.Message, want)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowDiskLosesNothing: a disk that is only slow (a commit taking a
// second or two, well under stallAfter) while more than maxPendingSamples
// arrive gets back-pressure, not drops: every sample is stored once it
// catches up, and no storage event is raised.
func TestSlowDiskLosesNothing(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{{Name: "PLC-1", CommLossAfter: config.Duration(time.Hour), Tags: []config.Tag{
		{Name: "LT-101", Kind: config.KindLevel}}}}}
	p := newPipeline(rules.New(cfg), nil, discardLogger())
	release := make(chan struct{})
	var (
		mu      sync.Mutex
		stored  int
		storage []model.Event
	)
	p.append = func(ctx context.Context, evs []model.Event, ss []model.Sample) error {
		<-release // the first commit takes as long as the test wants
		mu.Lock()
		defer mu.Unlock()
		stored += len(ss)
		for _, e := range evs {
			if e.Kind == model.StorageFault || e.Kind == model.StorageRestored {
				storage = append(storage, e)
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.run(ctx) }()

	const polls, perPoll = 2500, 200 // 500,000 samples in polls of 200, as BenchmarkEndToEnd: more than memory holds
	submitted := make(chan error, 1)
	go func() {
		start := time.Now().Add(-time.Hour)
		for i := range polls {
			batch := make([]model.Sample, perPoll)
			for j := range batch {
				batch[j] = model.Sample{Tag: "LT-101", Value: 10, Time: start.Add(time.Duration(i*perPoll+j) * time.Millisecond)}
			}
			if err := p.Submit(ctx, batch); err != nil {
				submitted <- err
				return
			}
		}
		submitted <- nil
	}()
	time.Sleep(1500 * time.Millisecond) // well under stallAfter
	close(release)
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "every sample stored", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stored == polls*perPoll
	})
	cancel()
	<-pipeDone
	mu.Lock()
	defer mu.Unlock()
	if len(storage) != 0 {
		t.Errorf("storage events for a disk that was only slow: %v", storage)
	}
}
