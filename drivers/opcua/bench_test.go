package opcua

import (
	"context"
	"fmt"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// manyTags is n polled tags over the reactor's three process nodes.
func manyTags(n int) []tagSpec {
	nodes := []string{sim.TT301, sim.PT301, sim.XS301}
	tags := make([]tagSpec, n)
	for i := range tags {
		tags[i] = tagSpec{name: fmt.Sprintf("T-%04d", i), node: sim.ReactorNode(nodes[i%3])}
	}
	return tags
}

// TestReadSplitsBatches: with max_nodes_per_read 2, seven tags go out in
// four requests and every sample still lands on its own tag.
func TestReadSplitsBatches(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	if err := r.Set(sim.TT301, 70); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(sim.PT301, 0.5); err != nil {
		t.Fatal(err)
	}
	dev := device(r.Endpoint(), 200*time.Millisecond, manyTags(7)...)
	dev.OPCUA = &config.OPCUA{MaxNodesPerRead: 2}
	d := newDriver(t, dev)
	s, err := pollUntil(t, d, 200*time.Millisecond, 15*time.Second, allGood)
	if !allGood(s, err) {
		t.Fatalf("%+v, %v", s, err)
	}
	want := []float64{70, 0.5, 1}
	for i, x := range s {
		if x.Tag != fmt.Sprintf("T-%04d", i) || x.Value != want[i%3] {
			t.Errorf("sample %d = %+v, want tag T-%04d = %v", i, x, i, want[i%3])
		}
	}
}

// BenchmarkPoll measures tags per second read by polling the in-process
// reactor (client and server share the machine's cores).
func BenchmarkPoll(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			r := sim.NewReactor(sim.ReactorOptions{})
			if err := r.Start("127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			dev := device(r.Endpoint(), time.Second, manyTags(n)...)
			d, err := New(dev, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if s, err := d.Poll(ctx); err != nil || s[n-1].Quality != model.Good {
				b.Fatalf("first poll: %v %+v", err, s[n-1])
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := d.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tags/s")
		})
	}
}

// BenchmarkPollNodeOPCUA: tags per second by polling node-opcua-server
// (a separate process, loopback).
func BenchmarkPollNodeOPCUA(b *testing.B) {
	srv := startNodeServer(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			tags := make([]tagSpec, n)
			for i := range tags {
				tags[i] = tagSpec{name: fmt.Sprintf("T-%04d", i), node: "ns=1;s=R-301.TT-301"}
			}
			d, err := New(interopDevice(srv.endpoint(), nil, tags...), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if s, err := d.Poll(ctx); err != nil || s[n-1].Quality != model.Good {
				b.Fatalf("first poll: %v", err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := d.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tags/s")
		})
	}
}

// BenchmarkSubscriptionNodeOPCUA: values per second taken in through one
// subscription of n monitored items on node-opcua's ever-changing TT-301,
// sampled every 50 ms and published every 100 ms (so at most 20 values
// per item and second: the figure shows whether the driver keeps up).
func BenchmarkSubscriptionNodeOPCUA(b *testing.B) {
	srv := startNodeServer(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			tags := make([]tagSpec, n)
			for i := range tags {
				tags[i] = tagSpec{name: fmt.Sprintf("T-%04d", i), node: "ns=1;s=R-301.TT-301", subscribe: true}
			}
			dev := interopDevice(srv.endpoint(), &config.OPCUA{PublishInterval: config.Duration(100 * time.Millisecond)}, tags...)
			for i := range dev.Tags {
				dev.Tags[i].OPCUA.SamplingInterval = config.Duration(50 * time.Millisecond)
			}
			d, err := New(dev, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := d.Poll(ctx); err != nil {
				b.Fatalf("first poll: %v", err)
			}
			start, t0 := d.Notifications(), time.Now()
			b.ResetTimer()
			for b.Loop() {
				time.Sleep(100 * time.Millisecond)
				if _, err := d.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(d.Notifications()-start)/time.Since(t0).Seconds(), "values/s")
		})
	}
}
