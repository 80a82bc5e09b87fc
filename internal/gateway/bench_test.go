package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
	"hazgate/uplink"
)

// benchConfig is a gateway with one device of n analog tags, each with all
// four alarm levels, publishing to brokerURL.
func benchConfig(tb testing.TB, n int, brokerURL string) *config.Config {
	tb.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, `gateway: {id: bench-gw, enterprise_code: BENCH01, data_dir: %q}
uplink: {brokers: [%q], inflight: 64, batch_max: 500}
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:1
    tags:
`, tb.TempDir(), brokerURL)
	for i := range n {
		fmt.Fprintf(&y, `      - {name: TT-%d, kind: temperature, unit: "°C", area: holding, address: %d, range: {min: 0, max: 100},
         alarms: {ll: 5, l: 10, h: 80, hh: 90, deadband: 1, on_delay: 2s}}
`, i, i)
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// BenchmarkEndToEnd measures the path a reading takes in production:
// pipeline (rules) -> durable buffer append -> MQTT publish -> PUBACK ->
// delete, against the embedded broker, counting samples as the broker
// delivers them to a subscriber.
func BenchmarkEndToEnd(b *testing.B) {
	const tags = 200
	brk, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer brk.Close()
	var delivered atomic.Int64
	if err := brk.Subscribe("hazgate/+/data", func(m broker.Message) {
		var p struct {
			Samples []json.RawMessage `json:"samples"`
		}
		if json.Unmarshal(m.Payload, &p) == nil {
			delivered.Add(int64(len(p.Samples)))
		}
	}); err != nil {
		b.Fatal(err)
	}
	cfg := benchConfig(b, tags, brk.URL())
	buf, err := buffer.Open(filepath.Join(cfg.Gateway.DataDir, BufferFile), buffer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	up, err := uplink.New(uplink.Options{Config: cfg}, buf)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go up.Run(ctx)
	pipe := newPipeline(rules.New(cfg), buf, discardLogger())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.run(ctx) }()

	// One poll's worth of samples, values wandering through the alarm
	// levels now and then so the rules do real work.
	poll := func(k int) []model.Sample {
		now := time.Now().UTC()
		s := make([]model.Sample, tags)
		for i := range s {
			s[i] = model.Sample{Tag: fmt.Sprintf("TT-%d", i), Device: "plc", Value: float64((k + i) % 100), Time: now}
		}
		return s
	}
	polls := max(b.N/tags, 1)
	total := int64(polls * tags)
	b.ResetTimer()
	start := time.Now()
	for k := range polls {
		if err := pipe.Submit(ctx, poll(k)); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for delivered.Load() < total {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d samples delivered", delivered.Load(), total)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "samples/s")
	b.ReportMetric(0, "ns/op")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
