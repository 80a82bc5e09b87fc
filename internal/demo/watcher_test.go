package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"hazgate/configs"
	"hazgate/internal/broker"
	"hazgate/internal/config"
)

func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("configs/demo.yaml", configs.DemoYAML())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// at is the arrival time every test line shows.
var at = time.Date(2025, 3, 1, 12, 0, 7, 512e6, time.Local)

func TestWatcherEventLines(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		want    string
	}{
		{
			"level HH alarm",
			`{"v":1,"gateway":"demo-gw-01","enterprise":"DEMO320500001","stream":"event","seq":7,"kind":"alarm_raised","time":"2025-03-01T04:00:07.400Z","device":"tank-farm-plc","tag":"LT-101","description":"T-101 level / T-101 储罐液位","hazard_source":"DEMO320500001-HS01","indicator":"T101-YW","level":"hh","value":18.6234,"limit":18.5,"unit":"m","message":"LT-101 T-101 level HH alarm: 18.62 >= 18.5"}`,
			"12:00:07.512  ALARM  HH     LT-101    T-101 level 18.62 m >= 18.5 m  (T-101 储罐液位)   [seq 7]",
		},
		{
			"gas first alarm",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":9,"kind":"alarm_raised","time":"2025-03-01T04:00:07.400Z","tag":"GT-201","description":"gas detector at the T-101 pump / T-101 泵区可燃气体探测器","level":"h","value":20.4,"limit":20,"unit":"%LEL","message":"x"}`,
			"12:00:07.512  ALARM  H      GT-201    gas detector at the T-101 pump 20.4 %LEL >= 20 %LEL, first gas alarm (一级报警)  (T-101 泵区可燃气体探测器)   [seq 9]",
		},
		{
			"alarm cleared with deadband",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":12,"kind":"alarm_cleared","time":"2025-03-01T04:00:07.400Z","tag":"LT-101","description":"T-101 level","level":"hh","value":18.27,"limit":18.5,"unit":"m","message":"x"}`,
			"12:00:07.512  CLEAR  HH     LT-101    T-101 level 18.27 m, back below 18.5 m   [seq 12]",
		},
		{
			"level switch tripped",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":8,"kind":"alarm_raised","time":"2025-03-01T04:00:07.400Z","tag":"LSHH-101","description":"T-101 high-high level switch / T-101 高高液位开关","level":"h","value":1,"limit":1,"message":"x"}`,
			"12:00:07.512  ALARM  H      LSHH-101  T-101 high-high level switch on  (T-101 高高液位开关)   [seq 8]",
		},
		{
			"level switch reset",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":10,"kind":"alarm_cleared","time":"2025-03-01T04:00:07.400Z","tag":"LSHH-101","description":"T-101 high-high level switch","level":"h","value":0,"limit":1,"message":"x"}`,
			"12:00:07.512  CLEAR  H      LSHH-101  T-101 high-high level switch off again   [seq 10]",
		},
		{
			"gas second alarm over",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":11,"kind":"alarm_cleared","time":"2025-03-01T04:00:07.400Z","tag":"GT-201","description":"gas detector at the T-101 pump","level":"hh","value":37.6,"limit":40,"unit":"%LEL","message":"x"}`,
			"12:00:07.512  CLEAR  HH     GT-201    gas detector at the T-101 pump 37.6 %LEL, back below 40 %LEL, second gas alarm over (二级报警解除)   [seq 11]",
		},
		{
			"sensor fault",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":14,"kind":"fault_raised","time":"2025-03-01T04:00:07.400Z","tag":"TT-102","description":"T-102 temperature (4-20 mA) / T-102 储罐温度","reason":"sensor fault: signal below range (raw 2500.000)","message":"x"}`,
			"12:00:07.512  FAULT         TT-102    T-102 temperature (4-20 mA): sensor fault: signal below range (raw 2500.000)  (T-102 储罐温度)   [seq 14]",
		},
		{
			"fault cleared",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":15,"kind":"fault_cleared","time":"2025-03-01T04:00:07.400Z","tag":"TT-102","description":"T-102 temperature","value":22.013,"unit":"°C","reason":"sensor fault","message":"x"}`,
			"12:00:07.512  CLEAR  FAULT  TT-102    T-102 temperature good again: 22.01 °C, after sensor fault   [seq 15]",
		},
		{
			"comm lost keeps the gateway's message",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":3,"kind":"comm_lost","time":"2025-03-01T04:00:07.400Z","device":"tank-farm-plc","reason":"timeout","message":"tank-farm-plc not answering: timeout"}`,
			"12:00:07.512  COMM   LOST   tank-farm-plc  tank-farm-plc not answering: timeout   [seq 3]",
		},
		{
			"gap",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":4,"kind":"gap","time":"2025-03-01T04:00:07.400Z","message":"dropped","gap":{"stream":"data","count":100,"first_seq":1,"last_seq":100,"from":"2025-03-01T03:00:00.000Z","to":"2025-03-01T03:01:00.000Z","cause":"size limit"}}`,
			"12:00:07.512  GAP           data      100 data records dropped (seq 1..100, 2025-03-01T03:00:00.000Z .. 2025-03-01T03:01:00.000Z): size limit   [seq 4]",
		},
		{
			"gateway started",
			`{"v":1,"gateway":"demo-gw-01","stream":"event","seq":1,"kind":"gateway_started","time":"2025-03-01T04:00:07.400Z","message":"gateway demo-gw-01 started"}`,
			"12:00:07.512  START         demo-gw-01  gateway demo-gw-01 started   [seq 1]",
		},
		{
			"not JSON",
			`{"v":1,`,
			"12:00:07.512  ?????  unreadable event on hazgate/demo-gw-01/event: unexpected end of JSON input",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newWatcher(&out, demoConfig(t), func() time.Time { return at })
			w.handle(broker.Message{Topic: "hazgate/demo-gw-01/event", Payload: []byte(c.payload)})
			if got := strings.TrimSuffix(out.String(), "\n"); got != c.want {
				t.Errorf("\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestWatcherStatusChangesOnly(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, demoConfig(t), func() time.Time { return at })
	online := `{"v":1,"gateway":"demo-gw-01","enterprise":"DEMO320500001","state":"online","time":"2025-03-01T04:00:00.000Z","version":"dev","started_at":"2025-03-01T04:00:00.000Z","uptime_s":0,"broker":"tcp://127.0.0.1:1883"}`
	heartbeat := strings.Replace(online, `"uptime_s":0`, `"uptime_s":10`, 1)
	offline := `{"v":1,"gateway":"demo-gw-01","state":"offline","reason":"shutdown","time":"2025-03-01T04:00:20.000Z","version":"dev","started_at":"2025-03-01T04:00:00.000Z","uptime_s":20}`
	for _, p := range []string{online, heartbeat, heartbeat, offline} {
		w.handle(broker.Message{Topic: "hazgate/demo-gw-01/status", Payload: []byte(p), Retained: true})
	}
	want := "12:00:07.512  STATE  ONLINE  demo-gw-01  version dev, broker tcp://127.0.0.1:1883\n" +
		"12:00:07.512  STATE  OFFLINE  demo-gw-01  shutdown\n"
	if out.String() != want {
		t.Errorf("\n got %q\nwant %q", out.String(), want)
	}
}

// TestWatcherClosed: after the demo's last line nothing more is written:
// the broker outlives it by a deferred close, and a late status (the
// offline message under load, a last will) raced with the caller reading
// the output (found by -race in cmd/hazgate's TestDemoRunsAndStops).
func TestWatcherClosed(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, demoConfig(t), func() time.Time { return at })
	w.close("hazgate demo stopped.")
	offline := `{"v":1,"gateway":"demo-gw-01","state":"offline","reason":"connection lost","time":"2025-03-01T04:00:20.000Z"}`
	w.handle(broker.Message{Topic: "hazgate/demo-gw-01/status", Payload: []byte(offline), Retained: true})
	if out.String() != "hazgate demo stopped.\n" {
		t.Errorf("output after close: %q", out.String())
	}
}

func TestWatcherSummary(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, demoConfig(t), func() time.Time { return at })
	msgs := []broker.Message{
		{Topic: "hazgate/demo-gw-01/data", Payload: []byte(`{"v":1,"gateway":"demo-gw-01","stream":"data","seq_first":1,"seq_last":3,"sent_at":"2025-03-01T04:00:00.000Z","samples":[` +
			`{"seq":1,"tag":"LT-101","kind":"level","unit":"m","value":15.012,"quality":"good","time":"2025-03-01T04:00:00.000Z"},` +
			`{"seq":2,"tag":"TT-102","kind":"temperature","unit":"°C","quality":"bad","reason":"sensor fault: signal below range (raw 2500.000)","time":"2025-03-01T04:00:00.000Z"},` +
			`{"seq":3,"tag":"XV-101","kind":"digital","value":1,"quality":"good","time":"2025-03-01T04:00:00.000Z"}]}`)},
		// a repeat of 3 and a hole at 4..5
		{Topic: "hazgate/demo-gw-01/data", Payload: []byte(`{"v":1,"stream":"data","seq_first":3,"seq_last":3,"samples":[{"seq":3,"tag":"XV-101","value":0,"quality":"good","time":"2025-03-01T04:00:01.000Z"}]}`)},
		{Topic: "hazgate/demo-gw-01/data", Payload: []byte(`{"v":1,"stream":"data","seq_first":6,"seq_last":6,"samples":[{"seq":6,"tag":"LT-101","unit":"m","value":18.6,"quality":"good","time":"2025-03-01T04:00:01.000Z"}]}`)},
		{Topic: "hazgate/demo-gw-01/event", Payload: []byte(`{"seq":1,"kind":"alarm_raised","tag":"LT-101","level":"hh","value":18.6,"limit":18.5,"unit":"m","message":"x"}`)},
		{Topic: "hazgate/demo-gw-01/event", Payload: []byte(`{"seq":2,"kind":"alarm_raised","tag":"GT-201","level":"h","value":21,"limit":20,"unit":"%LEL","message":"x"}`)},
		{Topic: "hazgate/demo-gw-01/event", Payload: []byte(`{"seq":3,"kind":"fault_raised","tag":"TT-102","reason":"sensor fault","message":"x"}`)},
		{Topic: "hazgate/demo-gw-01/event", Payload: []byte(`{"seq":4,"kind":"alarm_cleared","tag":"GT-201","level":"h","value":17,"limit":20,"unit":"%LEL","message":"x"}`)},
	}
	for _, m := range msgs {
		w.handle(m)
	}
	out.Reset()
	w.summary()
	want := "12:00:07.512  summary: 5 samples in 3 messages (1 bad: 1 sensor fault), data seq 1..6, events 4 (seq 1..4), data seq missing 2, repeated 1, active: LT-101 hh, TT-102 fault\n" +
		"12:00:07.512  latest:  LT-101 18.6 m  XV-101 0  TT-102 bad\n"
	if out.String() != want {
		t.Errorf("\n got %q\nwant %q", out.String(), want)
	}
}

func TestSeqTrack(t *testing.T) {
	cases := []struct {
		name              string
		batches           [][2]uint64
		span              string
		missing, repeated uint64
	}{
		{"in order", [][2]uint64{{1, 10}, {11, 20}, {21, 21}}, "1..21", 0, 0},
		{"hole", [][2]uint64{{1, 10}, {15, 20}}, "1..20", 4, 0},
		{"redelivered batch", [][2]uint64{{1, 10}, {5, 12}}, "1..12", 0, 6},
		{"starts late (buffer from an earlier run)", [][2]uint64{{500, 510}}, "500..510", 0, 0},
		{"nothing", nil, "none", 0, 0},
	}
	for _, c := range cases {
		var s seqTrack
		for _, b := range c.batches {
			s.add(b[0], b[1])
		}
		if s.span() != c.span || s.missing != c.missing || s.repeated != c.repeated {
			t.Errorf("%s: span %s missing %d repeated %d, want %s %d %d", c.name, s.span(), s.missing, s.repeated, c.span, c.missing, c.repeated)
		}
	}
}

func TestQuantity(t *testing.T) {
	cases := []struct {
		v    float64
		unit string
		want string
	}{
		{18.5, "m", "18.5 m"}, {20, "%LEL", "20 %LEL"}, {100, "", "100"}, {18.626, "m", "18.63 m"},
		{-0.001, "kPa", "0 kPa"}, {0.05, "", "0.05"},
	}
	for _, c := range cases {
		if got := quantity(c.v, c.unit); got != c.want {
			t.Errorf("quantity(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}
