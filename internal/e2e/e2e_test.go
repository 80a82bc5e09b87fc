// Package e2e runs the whole gateway against the simulated plant and a
// real broker, and checks the delivery guarantees from the platform's side:
// every sequence number arrives, across broker outages and kill -9.
package e2e

import (
	"fmt"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// plantAndBroker starts the scripted tank farm and an embedded broker on
// free loopback ports.
func plantAndBroker(t *testing.T) (*sim.Plant, *broker.Broker) {
	t.Helper()
	return testkit.StartPlant(t, sim.PlantOptions{Script: true}), testkit.StartBroker(t)
}

func loadConfig(t *testing.T, yaml []byte) *config.Config {
	t.Helper()
	cfg, err := config.Parse("demo-test.yaml", yaml)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// waitFor is testkit.WaitFor under the name every test in this package
// (and the branches that change them) already calls.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, cond)
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

	g, stop := runGateway(t, loadConfig(t, testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), t.TempDir())))

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
	b2 := testkit.StartBrokerOn(t, addr)
	coll.attach(t, b2)

	waitFor(t, 30*time.Second, fmt.Sprintf("data seq %d after the outage", acquired), func() bool { return coll.max("data") >= acquired })
	stop()

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
