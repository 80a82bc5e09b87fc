package interlock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
)

// bigPlant is 10,000 analog tags on 20 devices, each with four alarm
// levels, and 500 interlocks: each reads 2oo3 gas detectors and a level,
// and closes its own valve.
func bigPlant() (*config.Config, []model.Sample) {
	cfg := &config.Config{}
	var samples []model.Sample
	for d := 0; d < 20; d++ {
		dev := config.Device{Name: fmt.Sprint("PLC-", d), CommLossAfter: config.Duration(10 * s)}
		for i := 0; i < 500; i++ {
			name := fmt.Sprintf("T-%02d-%03d", d, i)
			dev.Tags = append(dev.Tags, config.Tag{Name: name, Kind: config.KindLevel, Alarms: &config.Alarms{
				HH: f(19), H: f(18), L: f(2), LL: f(1), Deadband: 0.1, OnDelay: config.Duration(2 * s)}})
			samples = append(samples, model.Sample{Tag: name, Device: dev.Name, Value: 10, Time: t0})
		}
		cfg.Devices = append(cfg.Devices, dev)
	}
	out := config.Device{Name: "OUT", CommLossAfter: config.Duration(10 * s)}
	for i := 0; i < 500; i++ {
		tag := func(k int) string { j := (i*4 + k) % 10000; return fmt.Sprintf("T-%02d-%03d", j/500, j%500) }
		valve := fmt.Sprint("XV-", i)
		out.Tags = append(out.Tags, config.Tag{Name: valve, Kind: config.KindDigital, Type: config.TypeBool, Writable: true})
		cfg.Interlocks = append(cfg.Interlocks, config.Interlock{Name: fmt.Sprint("IL-", i),
			Condition:  fmt.Sprintf("%s >= 18.5 or vote(2, %s >= 50, %s >= 50, %s >= 50)", tag(0), tag(1), tag(2), tag(3)),
			BadQuality: config.BadTrip, Actions: []config.Action{{Tag: valve, Value: f(0)}}})
	}
	cfg.Devices = append(cfg.Devices, out)
	return cfg, samples
}

// BenchmarkEvaluate10kTags500Interlocks: the alarm rules and the
// interlocks on one full poll of every tag, in the steady state.
func BenchmarkEvaluate10kTags500Interlocks(b *testing.B) {
	cfg, samples := bigPlant()
	alarms := rules.New(cfg)
	locks, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	events := make([]model.Event, 0, 64)
	cmds := make([]Command, 0, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		for j := range samples {
			samples[j].Value = 10 + float64(i%5)
			samples[j].Time = at
		}
		events = alarms.Process(samples, events[:0])
		events, cmds = locks.Process(samples, events, cmds[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(samples)), "ns/sample")
}

// instantWriter records when each write arrived.
type instantWriter struct {
	mu sync.Mutex
	at []time.Time
}

func (w *instantWriter) Write(ctx context.Context, tag string, v float64) error {
	w.mu.Lock()
	w.at = append(w.at, time.Now())
	w.mu.Unlock()
	return nil
}

// TestConditionToWriteLatency measures, inside the gateway, the time from
// handing the sample that completes a condition to the engines until the
// Writer is called, over 50 trips with 10,000 tags and 500 interlocks in
// the batch. Device round trips come on top (see the e2e test).
func TestConditionToWriteLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	cfg, samples := bigPlant()
	w := &instantWriter{}
	writers := map[string]drivers.Writer{}
	for _, tg := range cfg.Devices[len(cfg.Devices)-1].Tags {
		writers[tg.Name] = w
	}
	act := NewActuator(writers, ActuatorOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- act.Run(ctx) }()
	defer func() { cancel(); <-done }()
	alarms := rules.New(cfg)
	locks, _ := New(cfg)
	var lat []time.Duration
	for k := 0; k < 50; k++ {
		at := t0.Add(time.Duration(k) * time.Second)
		for j := range samples {
			samples[j].Value, samples[j].Time = 10, at
		}
		target := k % 500
		alarms.Process(samples, nil)
		locks.Process(samples, nil, nil)
		if _, err := locks.Reset(fmt.Sprint("IL-", (k+499)%500), "t", at); err != nil && k > 0 {
			t.Fatal(err)
		}
		samples[target*4%10000].Value = 19 // the level of IL-target
		w.mu.Lock()
		n := len(w.at)
		w.mu.Unlock()
		start := time.Now()
		events := alarms.Process(samples, nil)
		_, cmds := locks.Process(samples, events, nil)
		if len(cmds) != 1 {
			t.Fatalf("trip %d: %d commands", k, len(cmds))
		}
		for _, c := range cmds {
			act.Submit(c)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			w.mu.Lock()
			got := len(w.at) > n
			var when time.Time
			if got {
				when = w.at[n]
			}
			w.mu.Unlock()
			if got {
				lat = append(lat, when.Sub(start))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trip %d: no write within 5 s", k)
			}
			time.Sleep(50 * time.Microsecond)
		}
		act.Drain(nil)
	}
	slices.Sort(lat)
	t.Logf("condition-to-write inside the gateway, 10k tags + 500 interlocks per batch: p50 %v, p99 %v, max %v",
		lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}
