package opcua

import (
	"strings"
	"testing"
	"time"
)

func TestHeartbeatSilence(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	const timeout = 10 * time.Second
	cases := []struct {
		name string
		h    heartbeat
		now  time.Time
		want string // substring of the error; "" for alive
	}{
		{"beating", heartbeat{accepted: true, created: t0, beats: 5, last: t0.Add(20 * time.Second)}, t0.Add(25 * time.Second), ""},
		{"stopped beating", heartbeat{accepted: true, created: t0, beats: 5, last: t0.Add(20 * time.Second)}, t0.Add(31 * time.Second), "silent for 11s"},
		{"first value pending, within timeout", heartbeat{accepted: true, created: t0}, t0.Add(9 * time.Second), ""},
		{"never a first value", heartbeat{accepted: true, created: t0}, t0.Add(11 * time.Second), "since it was created"},
		{"clock refused: never armed", heartbeat{accepted: false, created: t0}, t0.Add(time.Hour), ""},
		{"one value only: calm, not silence", heartbeat{accepted: true, created: t0, beats: 1, last: t0}, t0.Add(time.Hour), ""},
		{"no subscription yet", heartbeat{}, t0.Add(time.Hour), ""},
	}
	for _, c := range cases {
		err := c.h.silence(c.now, timeout)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want alive", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
