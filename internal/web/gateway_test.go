package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/model"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// rig is a real gateway polling the simulated plant and publishing to the
// embedded broker, with its status page on a free loopback port.
type rig struct {
	plant  *sim.Plant
	gw     *gateway.Gateway
	broker *broker.Broker
	url    string // status page, ends in "/"
	stop   func()
}

// configYAML is a small tank-farm config for the simulated plant
// (internal/sim/README.md), publishing to brokerURL, with extra appended
// (a web section). It does not reuse configs/demo.yaml, which grows
// devices this test does not start.
func configYAML(t *testing.T, plantAddr, brokerURL, extra string) []byte {
	t.Helper()
	return []byte(fmt.Sprintf(`gateway:
  id: web-test-gw
  enterprise_code: TEST0001
  data_dir: %q
uplink:
  brokers: [%q]
  heartbeat: 10s
devices:
  - name: tank-farm-plc
    protocol: modbus-tcp
    address: %s
    interval: 200ms
    timeout: 150ms
    comm_loss_after: 2s
    backoff_max: 1s
    tags:
      - name: LT-101
        description: T-101 储罐液位
        kind: level
        unit: m
        area: holding
        address: 0
        type: float32
        order: CDAB
        range: {min: 0, max: 20}
        alarms: {h: 17.0, hh: 18.5, deadband: 0.2}
      - name: TT-102
        description: T-102 储罐温度
        kind: temperature
        unit: °C
        area: holding
        address: 11
        type: uint16
        range: {min: 0, max: 100}
        scale: {raw_min: 4000, raw_max: 20000}
      - name: LSHH-101
        kind: digital
        area: discrete
        address: 0
      - name: XV-101
        description: T-101 inlet valve
        kind: digital
        area: coil
        address: 0
        writable: true
interlocks:
  - name: IL-101
    description: T-101 overfill closes the inlet
    condition: LT-101 >= 18.5
    actions: [{tag: XV-101, value: 0}]
%s`, t.TempDir(), brokerURL, plantAddr, extra))
}

// startRig starts plant, broker and gateway. With deadDevice the gateway
// polls a port nobody listens on instead of the plant.
func startRig(t *testing.T, deadDevice bool, web string) *rig {
	t.Helper()
	r := startRigNoWait(t, deadDevice, web)
	testkit.WaitFor(t, 15*time.Second, "the status page to listen", func() bool { r.url = r.gw.WebURL(); return r.url != "" })
	return r
}

// startRigNoWait is startRig without waiting for the status page.
func startRigNoWait(t *testing.T, deadDevice bool, web string) *rig {
	t.Helper()
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	b := testkit.StartBroker(t)
	devAddr := plant.Addr()
	if deadDevice {
		devAddr = testkit.FreeAddr(t)
	}
	if web == "" {
		web = "web:\n  listen: 127.0.0.1:0\n"
	}
	cfg, err := config.Parse("web-test.yaml", configYAML(t, devAddr, "tcp://"+b.Addr(), web))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.RunInBackground(t, "gateway", g, 20*time.Second)
	return &rig{plant: plant, gw: g, broker: b, stop: stop}
}

var client = &http.Client{Timeout: 10 * time.Second}

// get fetches url and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

type health struct {
	OK      bool     `json:"ok"`
	Reasons []string `json:"reasons"`
	Devices int      `json:"devices_polled"`
}

func getHealth(t *testing.T, url string) (int, health) {
	t.Helper()
	code, body := get(t, url+"healthz")
	var h health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("healthz body %q: %v", body, err)
	}
	return code, h
}

func TestHealthzHealthyGateway(t *testing.T) {
	r := startRig(t, false, "")
	var code int
	var h health
	testkit.WaitFor(t, 20*time.Second, "/healthz to say 200", func() bool {
		code, h = getHealth(t, r.url)
		return code == http.StatusOK
	})
	if !h.OK || h.Devices != 1 || len(h.Reasons) != 0 {
		t.Fatalf("healthz 200 with %+v", h)
	}
}

func TestHealthzDeadDevice(t *testing.T) {
	r := startRig(t, true, "")
	// Wait until the loop has tried and failed, so the reason names the error.
	testkit.WaitFor(t, 20*time.Second, "a failed poll", func() bool {
		st := r.gw.Status()
		return len(st.Devices) > 0 && st.Devices[0].Stats.TotalFailures > 0
	})
	// It must stay unhealthy: sample it a few times over a second.
	for i := 0; i < 5; i++ {
		code, h := getHealth(t, r.url)
		if code != http.StatusServiceUnavailable || h.OK {
			t.Fatalf("dead device: healthz %d %+v, want 503", code, h)
		}
		if len(h.Reasons) == 0 || !strings.Contains(h.Reasons[0], "tank-farm-plc") {
			t.Fatalf("reason does not name the device: %q", h.Reasons)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestBasicAuth(t *testing.T) {
	pw := testkit.WriteTempFile(t, "web.pw", "s3cret-horse\n")
	r := startRig(t, false, fmt.Sprintf("web:\n  listen: 127.0.0.1:0\n  username: engineer\n  password_file: %q\n", pw))
	for _, tc := range []struct {
		user, pass string
		auth       bool
		want       int
	}{
		{auth: false, want: http.StatusUnauthorized},
		{"engineer", "wrong", true, http.StatusUnauthorized},
		{"hazgate", "s3cret-horse", true, http.StatusUnauthorized},
		{"engineer", "s3cret-horse\n", true, http.StatusUnauthorized},
		{"engineer", "s3cret-horse", true, http.StatusOK},
	} {
		for _, path := range []string{"", "metrics", "healthz?x"} {
			req, _ := http.NewRequest("GET", r.url+path, nil)
			if tc.auth {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.StatusCode
			if path == "healthz?x" && got == http.StatusServiceUnavailable {
				got = http.StatusOK // authenticated; health itself may not be up yet
			}
			if got != tc.want {
				t.Errorf("%s as %q/%q (auth %v): %d, want %d", path, tc.user, tc.pass, tc.auth, got, tc.want)
			}
			if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		}
	}
}

// TestBusyPort: a status page whose port is taken must not stop the
// gateway, and comes up by itself once the port is free.
func TestBusyPort(t *testing.T) {
	hog, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	r := startRigNoWait(t, false, fmt.Sprintf("web:\n  listen: %s\n", hog.Addr()))
	// (Latest, not Status: Status races with the start of Run.)
	testkit.WaitFor(t, 20*time.Second, "good samples committed while the port is taken", func() bool {
		latest, commit := r.gw.Latest()
		s, ok := latest["LT-101"]
		return ok && s.Quality == model.Good && commit.Err == nil
	})
	if u := r.gw.WebURL(); u != "" {
		t.Fatalf("serving at %s while the port is taken", u)
	}
	hog.Close()
	testkit.WaitFor(t, 30*time.Second, "the status page after the port was freed", func() bool { r.url = r.gw.WebURL(); return r.url != "" })
	testkit.WaitFor(t, 20*time.Second, "/healthz 200", func() bool { code, _ := getHealth(t, r.url); return code == http.StatusOK })
}
