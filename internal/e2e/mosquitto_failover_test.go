package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/watch"
)

// TestMosquittoFailover: two Mosquitto instances, the gateway configured
// with both; the first is stopped while the plant runs. The gateway must
// move to the second and the platform, subscribed to both, must miss no
// sequence number.
func TestMosquittoFailover(t *testing.T) {
	dir := t.TempDir()
	first := testkit.StartMosquitto(t, filepath.Join(dir), "allow_anonymous true")
	dir2 := t.TempDir()
	second := testkit.StartMosquitto(t, dir2, "allow_anonymous true")
	out := &testkit.SyncBuffer{}
	c, err := watch.NewChecker(out, false)
	if err != nil {
		t.Fatal(err)
	}
	wFirst := startWatcherOn(t, watch.Options{Broker: "tcp://" + first.Addr, Gateway: "demo-gw-01"}, c, out)
	wSecond := startWatcherOn(t, watch.Options{Broker: "tcp://" + second.Addr, Gateway: "demo-gw-01"}, c, out)

	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	s := string(testkit.DemoConfigYAML(t, plant.Addr(), "tcp://"+first.Addr, filepath.Join(dir, "data")))
	s = strings.Replace(s, "    - tcp://"+first.Addr, "    - tcp://"+first.Addr+"\n    - tcp://"+second.Addr, 1)
	if !strings.Contains(s, second.Addr) {
		t.Fatal("could not add the second broker to the demo config; update this test")
	}
	cfg := loadConfig(t, []byte(s))
	if len(cfg.Uplink.Brokers) != 2 {
		t.Fatalf("brokers: %v", cfg.Uplink.Brokers)
	}
	g, stop := runGateway(t, cfg)

	waitFor(t, 15*time.Second, "data through the first broker", func() bool { return c.Counts().Samples >= 100 })
	first.Stop()
	_ = wFirst.stop() // its connection is gone with the broker
	atStop := g.Status().Buffer.Data.NextSeq - 1
	t.Logf("first broker stopped at data seq %d", atStop)
	// Everything acquired before the stop, and more, arrives via the second.
	waitFor(t, 30*time.Second, "data through the second broker", func() bool {
		return c.Counts().Samples >= atStop+100
	})
	stop()
	waitFor(t, 10*time.Second, "orderly offline on the second broker", func() bool {
		return strings.Contains(out.String(), "offline (shutdown)")
	})
	r := wSecond.finish(t)
	t.Logf("%d samples, %d events, %d duplicates", r.Samples, r.Events, r.Duplicates)
}
