package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/broker"
	"hazgate/internal/model"
	"hazgate/rules"
	"hazgate/uplink"
)

// TestClockStepsUnderLoad: while samples flow to the broker, the wall clock
// steps back one hour and then forward one day (what the clock monitor
// reports through recordClockJump). The subscriber must see every sequence
// number of both streams in order of acquisition, with sample times that
// follow the clock (nothing re-sorted by time), a clock_jump event for
// each step, and no record dropped as "too old" by the 24 h age limit
// although the backlog looks a day old after the forward step.
func TestClockStepsUnderLoad(t *testing.T) {
	brk, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer brk.Close()
	var (
		mu      sync.Mutex
		dataSeq []uint64
		times   []time.Time
		kinds   []string
	)
	if err := brk.Subscribe("hazgate/+/data", func(m broker.Message) {
		var p struct {
			Samples []struct {
				Seq  uint64    `json:"seq"`
				Time time.Time `json:"time"`
			} `json:"samples"`
		}
		if json.Unmarshal(m.Payload, &p) == nil {
			mu.Lock()
			for _, s := range p.Samples {
				dataSeq = append(dataSeq, s.Seq)
				times = append(times, s.Time)
			}
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := brk.Subscribe("hazgate/+/event", func(m broker.Message) {
		var e struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(m.Payload, &e) == nil {
			mu.Lock()
			kinds = append(kinds, e.Kind)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}

	const tags = 50
	cfg := benchConfig(t, tags, brk.URL())
	// The buffer's clock is the stepped wall clock; everything else is real.
	var clockMu sync.Mutex
	offset := time.Duration(0)
	wall := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return time.Now().Add(offset) }
	buf, err := buffer.Open(filepath.Join(cfg.Gateway.DataDir, BufferFile), buffer.Options{MaxAge: 24 * time.Hour, Now: wall})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	// Hold delivery back at first so that a backlog exists when the clock
	// jumps: the broker is reached only after the steps.
	up, err := uplink.New(uplink.Options{Config: cfg}, buf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pipe := newPipeline(rules.New(cfg), buf, discardLogger())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.run(ctx) }()
	g := &Gateway{buf: buf, log: discardLogger()}

	polls := 0
	poll := func() {
		now := wall().UTC()
		s := make([]model.Sample, tags)
		for i := range s {
			s[i] = model.Sample{Tag: fmt.Sprintf("TT-%d", i), Device: "plc", Value: float64((polls + i) % 100), Time: now}
		}
		polls++
		if err := pipe.Submit(ctx, s); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	step := func(d time.Duration) {
		clockMu.Lock()
		offset += d
		at := time.Now().Add(offset)
		clockMu.Unlock()
		g.recordClockJump(uplink.ClockJump{Offset: d, At: at})
	}
	for range 100 {
		poll()
	}
	step(-time.Hour)
	for range 100 {
		poll()
	}
	step(25 * time.Hour)
	for range 100 {
		poll()
	}
	go up.Run(ctx) // the broker becomes reachable: the backlog drains
	for range 100 {
		poll()
	}
	want := uint64(polls * tags)
	waitUntil(t, 30*time.Second, "complete delivery of every sample", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(dataSeq)) >= want
	})

	mu.Lock()
	defer mu.Unlock()
	seen := make(map[uint64]bool)
	for i, s := range dataSeq {
		if i > 0 && s < dataSeq[i-1] {
			t.Fatalf("data seq %d after %d: reordered", s, dataSeq[i-1])
		}
		seen[s] = true
	}
	for s := uint64(1); s <= want; s++ {
		if !seen[s] {
			t.Fatalf("data seq %d never arrived (of %d)", s, want)
		}
	}
	// Times follow the clock: a step back shows as a step back, in
	// sequence order; nobody sorted by time.
	var backs int
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1].Add(-30 * time.Minute)) {
			backs++
		}
	}
	if backs != 1 {
		t.Errorf("%d backward steps of acquisition time in sequence order, want exactly 1", backs)
	}
	jumps, gaps := 0, 0
	for _, k := range kinds {
		switch k {
		case "clock_jump":
			jumps++
		case string(model.Gap):
			gaps++
		}
	}
	if jumps != 2 || gaps != 0 {
		t.Errorf("events %v: want 2 clock_jump and no gap", kinds)
	}
	cancel()
	<-pipeDone
}
