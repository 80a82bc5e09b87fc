package e2e

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/broker"
)

// TestDeviceIsolation runs the whole gateway with two devices, one of
// which accepts connections and never answers: its tags must go bad with a
// reason and a fault event must reach the platform, while the healthy
// device keeps its interval within 10 %.
func TestDeviceIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway for about 6 s")
	}
	plant, b := plantAndBroker(t)
	dead := modbustest.HangServer(t)

	const interval = 200 * time.Millisecond
	yaml := fmt.Sprintf(`gateway: {id: iso-gw, enterprise_code: TEST01, data_dir: %q}
uplink: {brokers: [%q]}
devices:
  - name: tank-plc
    protocol: modbus-tcp
    address: %s
    interval: 200ms
    timeout: 150ms
    tags:
      - {name: LT-101, kind: level, unit: m, area: holding, address: 0, type: float32, order: CDAB, range: {min: 0, max: 20}}
  - name: gas-controller
    protocol: modbus-tcp
    address: %s
    interval: 200ms
    timeout: 150ms
    comm_loss_after: 1s
    backoff_max: 1s
    tags:
      - {name: GT-201, kind: gas, unit: "%%LEL", area: input, address: 0, range: {min: 0, max: 100}}
      - {name: GT-202, kind: gas, unit: "%%LEL", area: input, address: 1, range: {min: 0, max: 100}}
`, t.TempDir(), b.URL(), plant.Addr(), dead)
	cfg := loadConfig(t, []byte(yaml))

	var (
		mu        sync.Mutex
		goodTimes []time.Time           // acquisition times of LT-101 samples
		badReason = map[string]string{} // tag -> last reason
		faults    = map[string]string{} // tag -> fault reason
		commLost  = map[string]string{} // device -> comm_lost reason
	)
	err := b.Subscribe("hazgate/iso-gw/#", func(m broker.Message) {
		var p struct {
			Kind    string `json:"kind"`
			Tag     string `json:"tag"`
			Device  string `json:"device"`
			Reason  string `json:"reason"`
			Samples []struct {
				Tag     string    `json:"tag"`
				Quality string    `json:"quality"`
				Reason  string    `json:"reason"`
				Time    time.Time `json:"time"`
			} `json:"samples"`
		}
		if json.Unmarshal(m.Payload, &p) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if p.Kind == "fault_raised" {
			faults[p.Tag] = p.Reason
		}
		if p.Kind == "comm_lost" {
			commLost[p.Device] = p.Reason
		}
		for _, s := range p.Samples {
			switch {
			case s.Tag == "LT-101" && s.Quality == "good":
				goodTimes = append(goodTimes, s.Time)
			case s.Quality != "good":
				badReason[s.Tag] = s.Reason
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	runGateway(t, cfg)

	waitFor(t, 10*time.Second, "fault events for both gas detectors", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return faults["GT-201"] != "" && faults["GT-202"] != ""
	})
	// And one comm_lost for the dead device as a whole, none for the other.
	waitFor(t, 10*time.Second, "comm_lost for the dead device", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(commLost) > 0
	})
	// Measure the healthy device over a window while the dead one is down.
	mu.Lock()
	from := len(goodTimes)
	mu.Unlock()
	time.Sleep(4 * time.Second)
	mu.Lock()
	window := append([]time.Time(nil), goodTimes[from:]...)
	reasons := fmt.Sprint(badReason)
	faultReasons := fmt.Sprint(faults)
	lt101Bad := badReason["LT-101"]
	gasBad := map[string]string{"GT-201": badReason["GT-201"], "GT-202": badReason["GT-202"]}
	mu.Unlock()

	mu.Lock()
	lost := fmt.Sprint(commLost)
	_, gasLost := commLost["gas-controller"]
	nLost := len(commLost)
	mu.Unlock()
	if !gasLost || nLost != 1 {
		t.Errorf("comm_lost events %s, want exactly one, for gas-controller", lost)
	}
	if lt101Bad != "" {
		t.Errorf("the healthy device's tag went bad (%s): the dead device affected it", lt101Bad)
	}
	if len(window) < 2 {
		t.Fatalf("healthy device delivered %d samples in 4 s", len(window))
	}
	span := window[len(window)-1].Sub(window[0])
	mean := span / time.Duration(len(window)-1)
	if mean < interval*9/10 || mean > interval*11/10 {
		t.Errorf("healthy device's mean interval %s over %d polls, want %s ± 10%%", mean, len(window), interval)
	}
	t.Logf("healthy device: %d polls, mean interval %s; dead device: bad reasons %s, faults %s", len(window), mean, reasons, faultReasons)
	for _, tag := range []string{"GT-201", "GT-202"} {
		if gasBad[tag] == "" {
			t.Errorf("%s: no bad sample with a reason reached the platform", tag)
		}
	}
}
