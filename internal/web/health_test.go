package web

import (
	"errors"
	"strings"
	"testing"
	"time"

	"hazgate/internal/scheduler"
)

func TestCheckHealth(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	dev := func(name string, interval time.Duration, ago time.Duration) Device {
		d := Device{Name: name, Interval: interval, Timeout: interval / 2}
		if ago >= 0 {
			d.Stats = scheduler.LoopStats{State: "up", LastGoodPoll: now.Add(-ago)}
		} else {
			d.Stats = scheduler.LoopStats{State: "backoff", LastError: "connection refused"}
		}
		return d
	}
	for _, tt := range []struct {
		name    string
		devices []Device
		err     error
		ok      bool
		reason  string
	}{
		{"fresh", []Device{dev("a", time.Second, 2*time.Second)}, nil, true, ""},
		{"three intervals old", []Device{dev("a", time.Second, 4*time.Second)}, nil, false, "a last good poll 4s ago"},
		{"capped at 30 s", []Device{dev("a", 20*time.Second, 35*time.Second)}, nil, false, "last good poll 35s ago"},
		{"slow device gets one cycle", []Device{dev("a", time.Minute, 70*time.Second)}, nil, true, ""},
		{"slow device late", []Device{dev("a", time.Minute, 95*time.Second)}, nil, false, "a last good poll 1m35s ago"},
		{"one of two is enough", []Device{dev("a", time.Second, -1), dev("b", time.Second, time.Second)}, nil, true, ""},
		{"never polled", []Device{dev("a", time.Second, -1)}, nil, false, "a never polled successfully: connection refused"},
		{"no devices", nil, nil, false, "no devices configured"},
		{"buffer refused", []Device{dev("a", time.Second, 0)}, errors.New("disk full"), false, "the buffer refused the last commit: disk full"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := CheckHealth(Snapshot{Now: now, Devices: tt.devices, Commit: Commit{Err: tt.err}})
			if h.OK != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", h.OK, tt.ok, h)
			}
			if got := strings.Join(h.Reasons, "\n"); !strings.Contains(got, tt.reason) || (tt.ok && got != "") {
				t.Fatalf("reasons %q, want %q", got, tt.reason)
			}
		})
	}
}
