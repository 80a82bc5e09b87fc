package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/web"
)

func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// startGateway runs a gateway on the simulated plant from a config file
// whose web section has a password and HTTPS, as on a box reachable from
// the plant network, and returns the file the CLI is given.
func startGateway(t *testing.T) (plant *sim.Plant, cfgPath string, events func() []map[string]any) {
	t.Helper()
	plant = testkit.StartPlant(t, sim.PlantOptions{Script: true})
	b := testkit.StartBroker(t)
	events = testkit.CollectEvents(t, b, "hazgate/cli-test-gw/event").All
	// A certificate for a name that is not 127.0.0.1, as a box's own
	// certificate would be: the CLI must still trust it, by pinning the
	// file, not by its name.
	certFile, keyFile, _ := testkit.SelfSignedCert(t, "gw-box.plant.local", "gw-box.plant.local")
	pw := testkit.WriteTempFile(t, "web.pw", "tank-farm\n")
	cfgPath = testkit.WriteTempFile(t, "plant.yaml", fmt.Sprintf(`gateway:
  id: cli-test-gw
  enterprise_code: TEST0001
  data_dir: %q
uplink:
  brokers: [%q]
devices:
  - name: tank-farm-plc
    protocol: modbus-tcp
    address: %s
    interval: 200ms
    timeout: 150ms
    tags:
      - name: LT-101
        kind: level
        unit: m
        area: holding
        address: 0
        type: float32
        order: CDAB
        range: {min: 0, max: 20}
        alarms: {h: 17.0, hh: 18.5, deadband: 0.2}
      - name: XV-101
        kind: digital
        area: coil
        address: 0
        writable: true
interlocks:
  - name: IL-101
    condition: LT-101 >= 18.5
    actions: [{tag: XV-101, value: 0}]
web:
  listen: %s
  username: engineer
  password_file: %q
  cert_file: %q
  key_file: %q
`, t.TempDir(), b.URL(), plant.Addr(), testkit.FreeAddr(t), pw, certFile, keyFile))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	testkit.RunInBackground(t, "gateway", g, 20*time.Second)
	testkit.WaitFor(t, 15*time.Second, "the status page to listen", func() bool { return g.WebURL() != "" })
	return plant, cfgPath, events
}

func listAlarms(t *testing.T, cfgPath string) []web.AlarmJSON {
	t.Helper()
	out, errOut, code := runCLI("alarm", "list", "-c", cfgPath, "--json")
	if code != exitOK {
		t.Fatalf("alarm list: exit %d: %s", code, errOut)
	}
	var list []web.AlarmJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("alarm list --json %q: %v", out, err)
	}
	return list
}

func alarmState(list []web.AlarmJSON, tag, level string) string {
	for _, a := range list {
		if a.Tag == tag && a.Level == level {
			return a.State
		}
	}
	return "normal"
}

// TestOperatorCommands: against a running gateway behind a password and
// HTTPS, found through its config file, the CLI lists and acknowledges
// alarms and resets and bypasses an interlock; refusals come back as exit
// 1 with the gateway's reason; each action reaches the platform with who.
func TestOperatorCommands(t *testing.T) {
	plant, cfg, events := startGateway(t)
	if err := plant.Set("LT-101", 19.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "LT-101 hh active and unacknowledged", func() bool {
		return alarmState(listAlarms(t, cfg), "LT-101", "hh") == "active_unacked"
	})
	out, _, code := runCLI("alarm", "list", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "TAG") || !regexpLine(out, "LT-101", "hh", "active_unacked", "red") {
		t.Errorf("alarm list: exit %d\n%s", code, out)
	}
	t.Logf("hazgate alarm list:\n%s", out)

	// flags after the tag, as people type them
	out, errOut, code := runCLI("alarm", "ack", "LT-101:hh", "--by", "张三", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "LT-101 hh acknowledged by engineer:张三") {
		t.Fatalf("alarm ack: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if s := alarmState(listAlarms(t, cfg), "LT-101", "hh"); s != "active_acked" {
		t.Errorf("after the ack LT-101 hh is %s", s)
	}
	_, errOut, code = runCLI("alarm", "ack", "-c", cfg, "--by", "张三", "LT-101:hh")
	if code != exitFailure || !strings.Contains(errOut, "refused: ack LT-101 hh: no unacknowledged alarm") {
		t.Errorf("second ack: exit %d: %s", code, errOut)
	}
	out, errOut, code = runCLI("alarm", "shelve", "LT-101:h", "--reason", "液位计校验", "--by", "张三", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "LT-101 h shelved for 1h0m0s") || !strings.Contains(out, "by engineer:张三") {
		t.Fatalf("alarm shelve: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, _, _ = runCLI("alarm", "list", "-c", cfg)
	if !regexpLine(out, "LT-101", " h ", "shelved by engineer:张三 until") {
		t.Errorf("alarm list after the shelving:\n%s", out)
	}
	_, errOut, code = runCLI("alarm", "shelve", "LT-101:h", "--for", "13h", "--reason", "x", "--by", "张三", "-c", cfg)
	if code != exitFailure || !strings.Contains(errOut, "refused: LT-101 h: shelving refused: longer than 12h0m0s") {
		t.Errorf("shelving beyond 12 h: exit %d: %s", code, errOut)
	}
	out, errOut, code = runCLI("alarm", "unshelve", "LT-101:h", "--by", "张三", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "LT-101 h unshelved by engineer:张三") {
		t.Fatalf("alarm unshelve: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	_, errOut, code = runCLI("alarm", "ack", "NO-SUCH", "--by", "张三", "-c", cfg)
	if code != exitFailure || !strings.Contains(errOut, "unknown tag") {
		t.Errorf("ack of an unknown tag: exit %d: %s", code, errOut)
	}

	testkit.WaitFor(t, 10*time.Second, "IL-101 tripped", func() bool {
		out, _, _ := runCLI("interlock", "list", "-c", cfg)
		return regexpLine(out, "IL-101", "tripped")
	})
	_, errOut, code = runCLI("interlock", "reset", "IL-101", "--by", "王工", "-c", cfg)
	if code != exitFailure || !strings.Contains(errOut, "refused: IL-101: reset refused: the trip condition still holds (LT-101 >= 18.5)") {
		t.Errorf("reset while the condition holds: exit %d: %s", code, errOut)
	}
	_, errOut, code = runCLI("interlock", "bypass", "IL-101", "--for", "9h", "--reason", "long job", "--by", "王工", "-c", cfg)
	if code != exitFailure || !strings.Contains(errOut, "bypass_max") {
		t.Errorf("bypass beyond bypass_max: exit %d: %s", code, errOut)
	}
	out, errOut, code = runCLI("interlock", "bypass", "IL-101", "--reason", "液位计校验", "--by", "王工", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "IL-101 bypassed for 30m0s") || !strings.Contains(out, "by engineer:王工") {
		t.Fatalf("bypass: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, _, _ = runCLI("interlock", "list", "-c", cfg)
	if !regexpLine(out, "IL-101", "tripped", "holds", "by engineer:王工: 液位计校验") {
		t.Errorf("interlock list after the bypass:\n%s", out)
	}
	t.Logf("hazgate interlock list:\n%s", out)

	if err := plant.Set("LT-101", 10.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "IL-101's condition to clear", func() bool {
		out, _, _ := runCLI("interlock", "list", "-c", cfg)
		return regexpLine(out, "IL-101", "tripped", " no ")
	})
	out, errOut, code = runCLI("interlock", "reset", "IL-101", "--by", "王工", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "IL-101 reset by engineer:王工") {
		t.Fatalf("reset: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, errOut, code = runCLI("interlock", "unbypass", "IL-101", "--by", "王工", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "IL-101 bypass ended by engineer:王工") {
		t.Fatalf("unbypass: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	for _, want := range [][2]string{
		{"alarm_acknowledged", "engineer:张三"}, {"alarm_shelved", "engineer:张三"}, {"alarm_unshelved", "engineer:张三"}, {"bypass_on", "engineer:王工"}, {"interlock_reset", "engineer:王工"}, {"bypass_off", "engineer:王工"},
	} {
		testkit.WaitFor(t, 30*time.Second, want[0]+" by "+want[1]+" at the broker", func() bool {
			for _, ev := range events() {
				if ev["kind"] == want[0] && ev["who"] == want[1] {
					return true
				}
			}
			return false
		})
	}
}

// regexpLine says whether one line of out holds every part, in order.
func regexpLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// refusingOperator refuses everything as a stopping gateway would.
type refusingOperator struct{}

func (refusingOperator) Ack(context.Context, string, string, string) error {
	return fmt.Errorf("%w: gateway is not running", web.ErrUnavailable)
}
func (refusingOperator) ResetInterlock(context.Context, string, string) error { return nil }
func (refusingOperator) Bypass(context.Context, string, string, string, time.Duration) error {
	return nil
}
func (refusingOperator) Unbypass(context.Context, string, string) error { return nil }
func (refusingOperator) Shelve(context.Context, string, string, string, string, time.Duration) error {
	return nil
}
func (refusingOperator) Unshelve(context.Context, string, string, string) error { return nil }

// TestOperatorCommandErrors: usage mistakes exit 2 before anything is
// sent; a gateway that is not running, a wrong password and a gateway
// that cannot take the request exit 1 with a sentence that says so.
func TestOperatorCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alarm"}, "usage: hazgate alarm"},
		{[]string{"alarm", "silence"}, "usage: hazgate alarm"},
		{[]string{"alarm", "ack", "LT-101"}, "--by NAME is required"},
		{[]string{"alarm", "ack", "LT-101:xx", "--by", "a"}, `level "xx" is not one of hh, h, l, ll, roc, dev, fault`},
		{[]string{"alarm", "ack", "--by", "a"}, "name one TAG"},
		{[]string{"alarm", "list", "extra"}, "unexpected"},
		{[]string{"alarm", "shelve", "LT-101", "--by", "a", "--reason", "r"}, "TAG:LEVEL"},
		{[]string{"alarm", "shelve", "LT-101:hh", "--by", "a"}, "--reason TEXT is required"},
		{[]string{"alarm", "unshelve", "LT-101:hh"}, "--by NAME is required"},
		{[]string{"interlock", "trip", "IL-101"}, "usage: hazgate interlock"},
		{[]string{"interlock", "reset", "IL-101"}, "--by NAME is required"},
		{[]string{"interlock", "bypass", "IL-101", "--by", "a"}, "--reason TEXT is required"},
		{[]string{"interlock", "bypass", "IL-101", "--by", "a", "--reason", "r", "--for", "-1m"}, "positive duration"},
		{[]string{"alarm", "list", "-c", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
	} {
		_, errOut, code := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 with %q", tc.args, code, errOut, tc.want)
		}
	}

	dead := "http://" + testkit.FreeAddr(t)
	_, errOut, code := runCLI("alarm", "ack", "LT-101", "--by", "a", "--url", dead)
	if code != exitFailure || !strings.Contains(errOut, "no gateway answers at "+dead+"/: is it running") {
		t.Errorf("gateway not running: exit %d: %s", code, errOut)
	}

	pw := testkit.WriteTempFile(t, "pw", "secret\n")
	s, err := web.New(web.Options{Config: config.Web{Listen: "127.0.0.1:0", PasswordFile: pw},
		Source: func() web.Snapshot { return web.Snapshot{} }, Operator: refusingOperator{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, errOut, code = runCLI("alarm", "list", "--url", srv.URL)
	if code != exitFailure || !strings.Contains(errOut, "refused the credentials") {
		t.Errorf("without the password: exit %d: %s", code, errOut)
	}

	open, err := web.New(web.Options{Config: config.Web{Listen: "127.0.0.1:0"},
		Source: func() web.Snapshot { return web.Snapshot{} }, Operator: refusingOperator{}})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(open.Handler())
	defer srv2.Close()
	_, errOut, code = runCLI("alarm", "ack", "LT-101", "--by", "a", "--url", srv2.URL)
	if code != exitFailure || !strings.Contains(errOut, "cannot take it now: gateway is not taking requests: gateway is not running") {
		t.Errorf("stopping gateway: exit %d: %s", code, errOut)
	}
	out, _, code := runCLI("alarm", "list", "--url", srv2.URL)
	if code != exitOK || !strings.Contains(out, "no active alarms") {
		t.Errorf("empty list: exit %d: %s", code, out)
	}
}
