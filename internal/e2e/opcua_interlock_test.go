package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	opcuadrv "hazgate/drivers/opcua"
	"hazgate/internal/config"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// opcuaInterlockConfig polls the simulated reactor R-301 over OPC UA: its
// temperature TT-301 (read-only) and the agitator start command HS-301
// (the one writable node the simulator serves). IL-301 restarts the
// agitator when the temperature runs away, the reactor's own cure for the
// hot spot of the demo's incident.
const opcuaInterlockConfig = `
gateway: {id: gw-opcua-il, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [%s], heartbeat: 10s}
devices:
  - name: reactor-r301
    protocol: opcua
    address: %s
    interval: 200ms
    timeout: 150ms
    comm_loss_after: 3s
    tags:
      - {name: TT-301, kind: temperature, unit: °C, node: "ns=1;s=R-301.TT-301", range: {min: 0, max: 200}, alarms: {hh: 100}}
      - {name: HS-301, kind: digital, node: "ns=1;s=R-301.HS-301", writable: true}
interlocks:
  - {name: IL-301, condition: TT-301 >= 100, actions: [{tag: HS-301, value: 1}]}
`

// TestInterlockWritesOPCUA runs the gateway in-process against the
// simulated OPC UA reactor: a temperature read over OPC UA crossing the
// interlock's limit trips it, and its action writes the reactor's
// writable Boolean node. The write is checked at the simulator, over a
// session of its own, and the verified action arrives at the broker.
func TestInterlockWritesOPCUA(t *testing.T) {
	reactor := testkit.StartReactor(t, sim.ReactorOptions{}) // steady 80 °C, no script
	b := testkit.StartBroker(t)
	coll := newCollector()
	coll.attach(t, b)

	// The simulator's view, through a session apart from the gateway's.
	ctx, cancelCtx := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelCtx()
	client, err := opcuadrv.Dial(ctx, reactor.Endpoint(), config.OPCUA{}, nil)
	if err != nil {
		t.Fatalf("dial the reactor: %v", err)
	}
	t.Cleanup(client.Close)
	command := func() string {
		r, err := client.Read(ctx, []string{sim.ReactorNode(sim.HS301)})
		if err != nil {
			t.Errorf("read HS-301 at the reactor: %v", err)
			return ""
		}
		return r[0].Value
	}
	if v := command(); v != "false" {
		t.Fatalf("HS-301 at the reactor = %q before any trip, want false", v)
	}

	cfg := loadConfig(t, fmt.Appendf(nil, opcuaInterlockConfig, t.TempDir(), b.URL(), reactor.Endpoint()))
	runGateway(t, cfg)

	waitFor(t, 20*time.Second, "first reactor data at the broker", func() bool { return coll.max("data") > 4 })
	if n := coll.kindCount("interlock_tripped"); n != 0 {
		t.Fatalf("IL-301 tripped %d times at 80 °C", n)
	}
	if v := command(); v != "false" {
		t.Fatalf("HS-301 = %q at 80 °C, want false: written without a trip", v)
	}

	if err := reactor.Set(sim.TT301, 101); err != nil {
		t.Fatal(err)
	}
	hot := time.Now()
	waitFor(t, 20*time.Second, "HS-301 written true at the reactor by IL-301", func() bool { return command() == "true" })
	took := time.Since(hot)
	t.Logf("TT-301 above 100 °C -> HS-301 true at the reactor in %v (poll 200ms, no on_delay)", took)
	if took > 5*time.Second {
		t.Errorf("the write reached the reactor %v after the trip condition, want within a few polls", took)
	}
	waitFor(t, 20*time.Second, "IL-301 tripped and its action verified at the platform", func() bool {
		return coll.kindCount("interlock_tripped") == 1 && coll.kindCount("interlock_action") == 1
	})
	if n := coll.kindCount("interlock_action_failed"); n != 0 {
		t.Errorf("%d failed actions", n)
	}
}
