// Package e2e runs the whole gateway against the simulated plant and a
// real broker, and checks the delivery guarantees from the platform's side:
// every sequence number arrives, across broker outages and kill -9.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hazgate/configs"
	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
)

// plantAndBroker starts the simulated tank farm and an embedded broker on
// free loopback ports.
func plantAndBroker(t *testing.T) (*sim.Plant, *broker.Broker) {
	t.Helper()
	plant := sim.NewPlant(sim.PlantOptions{Script: true})
	if err := plant.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start plant: %v", err)
	}
	t.Cleanup(func() { plant.Close() })
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return plant, b
}

var dataDirLine = regexp.MustCompile(`data_dir: \S+`)

// demoConfigYAML is configs/demo.yaml pointed at the test's plant, broker
// and data directory, polling faster so the tests see plenty of samples.
func demoConfigYAML(t *testing.T, plantAddr, brokerURL, dataDir string) []byte {
	t.Helper()
	s := string(configs.DemoYAML())
	for old, repl := range map[string]string{
		"127.0.0.1:15020":      plantAddr,
		"tcp://127.0.0.1:1883": brokerURL,
		"interval: 500ms":      "interval: 100ms",
		"timeout: 300ms":       "timeout: 80ms",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("configs/demo.yaml no longer contains %q; update this test", old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	s = dataDirLine.ReplaceAllString(s, fmt.Sprintf("data_dir: %q", dataDir))
	return []byte(s)
}

func loadConfig(t *testing.T, yaml []byte) *config.Config {
	t.Helper()
	cfg, err := config.Parse("demo-test.yaml", yaml)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestBrokerOutage stops the broker for 20 s while the plant keeps
// changing: when it returns, the platform must see every sequence number
// of both streams, in order per stream (duplicates allowed, gaps not).
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 30 s")
	}
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)
	addr := b.Addr()

	cfg := loadConfig(t, demoConfigYAML(t, plant.Addr(), b.URL(), t.TempDir()))
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15 s")
		}
	}()

	waitFor(t, 10*time.Second, "first data", func() bool { return coll.max("data") > 50 })
	b.Close()
	beforeOutage := coll.max("data")
	t.Logf("broker stopped at data seq %d", beforeOutage)
	time.Sleep(20 * time.Second)

	// The gateway kept acquiring: what it made durable meanwhile is what
	// must arrive now.
	acquired := g.Status().Buffer.Data.NextSeq - 1
	if acquired < beforeOutage+100 {
		t.Fatalf("only %d data records acquired during the outage; acquisition must not wait for the broker", acquired-beforeOutage)
	}
	b2, err := broker.Start(addr, nil)
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { b2.Close() })
	coll.attach(t, b2)

	waitFor(t, 30*time.Second, fmt.Sprintf("data seq %d after the outage", acquired), func() bool { return coll.max("data") >= acquired })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("gateway stopped with %v", err)
	}
	done <- nil // for the deferred stop

	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
		if err := coll.outOfOrder(stream); err != nil {
			t.Error(err)
		}
		t.Logf("%s: up to seq %d, %d duplicates", stream, coll.max(stream), coll.duplicates(stream))
	}
	if coll.max("event") == 0 {
		t.Error("no event arrived; the gateway_started event at least must")
	}
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
