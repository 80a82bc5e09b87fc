package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"hazgate/internal/model"
	"hazgate/internal/scheduler"
	"hazgate/rules"
)

// bigSnapshot is a large site: 20 devices of 20 tags, 40 active alarms.
func bigSnapshot() Snapshot {
	now := time.Now()
	s := Snapshot{Now: now, GatewayID: "gw", Version: "dev", Uptime: time.Hour}
	for d := 0; d < 20; d++ {
		dev := Device{Name: fmt.Sprintf("plc-%d", d), Protocol: "modbus-tcp", Address: "10.0.0.1:502",
			Interval: time.Second, Timeout: 500 * time.Millisecond,
			Stats: scheduler.LoopStats{State: "up", Polls: 1000, LastGoodPoll: now}}
		for i := 0; i < 20; i++ {
			name := fmt.Sprintf("LT-%d%02d", d, i)
			dev.Tags = append(dev.Tags, Tag{Name: name, Description: "储罐液位", Unit: "m", Kind: "level",
				HasSample: true, Sample: model.Sample{Tag: name, Value: 12.345, Time: now}})
			if i < 2 {
				s.Active = append(s.Active, rules.ActiveAlarm{Tag: name, Device: dev.Name, Level: "hh", Colour: "red", Since: now, Value: 19, Limit: 18.5})
			}
		}
		s.Devices = append(s.Devices, dev)
	}
	return s
}

func benchGet(b *testing.B, path string) {
	snap := bigSnapshot()
	srv, err := New(Options{Source: func() Snapshot { return snap }})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
		b.SetBytes(n)
	}
}

// 400 tags, 40 alarms: the page and a scrape over loopback HTTP.
func BenchmarkStatusPage400Tags(b *testing.B) { benchGet(b, "/") }
func BenchmarkMetrics20Devices(b *testing.B)  { benchGet(b, "/metrics") }
