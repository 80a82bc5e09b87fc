package watch

import (
	"context"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// gatewayConfig is configs/demo.yaml pointed at the test's plant and
// broker, polling fast and with a 1 s heartbeat so health is exercised.
func gatewayConfig(t *testing.T, plantAddr, brokerURL string) *config.Config {
	t.Helper()
	y := testkit.DemoConfigYAML(t, plantAddr, brokerURL, t.TempDir(), "heartbeat: 10s", "heartbeat: 1s")
	cfg, err := config.Parse("watch-test.yaml", y)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWatchRealGateway runs the whole gateway on the simulated plant
// through the embedded broker and watches it: every message must match
// the schemas, and no sequence number may be missing.
func TestWatchRealGateway(t *testing.T) {
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	b := testkit.StartBroker(t)

	var out testkit.SyncBuffer
	c, err := NewChecker(&out, false)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	ready := make(chan struct{})
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- Run(wctx, Options{Broker: b.URL(), Gateway: "demo-gw-01", Ready: func() { close(ready) }}, c)
	}()
	select {
	case <-ready:
	case err := <-watchDone:
		t.Fatalf("watch: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not subscribe within 10 s")
	}

	cfg := gatewayConfig(t, plant.Addr(), b.URL())
	if cfg.Gateway.ID != "demo-gw-01" {
		t.Fatalf("demo gateway id is %q; update this test", cfg.Gateway.ID)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gctx, stopGateway := context.WithCancel(context.Background())
	gwDone := make(chan error, 1)
	go func() { gwDone <- g.Run(gctx) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		samples, statuses := c.report.Samples, c.report.Statuses
		c.mu.Unlock()
		if samples >= 300 && statuses >= 3 {
			break
		}
		if time.Now().After(deadline) {
			stopGateway()
			t.Fatalf("after 20 s: %d samples, %d statuses\n%s", samples, statuses, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopGateway()
	select {
	case err := <-gwDone:
		if err != nil {
			t.Errorf("gateway: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not stop within 15 s")
	}
	// The orderly stop ends with the retained offline status.
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "offline (shutdown)") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stopWatch()
	if err := <-watchDone; err != nil {
		t.Fatalf("watch: %v", err)
	}
	r := c.Finish()
	text := out.String()
	if !r.OK() || r.Invalid != 0 {
		t.Fatalf("watch found problems: invalid %d, missing %v\n%s", r.Invalid, r.Missing, tail(text, 4000))
	}
	for _, want := range []string{"gateway_started", "gateway_stopped", "STATUS   demo-gw-01 online", "offline (shutdown)", "clock ok", "tank-farm-plc up"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(text, 4000))
		}
	}
	t.Logf("%d messages, %d samples, %d events, %d duplicates", r.Messages, r.Samples, r.Events, r.Duplicates)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
