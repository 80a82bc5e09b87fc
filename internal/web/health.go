package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxPollAge caps how old a device's last good poll may be for the gateway
// to count as healthy: three poll intervals, at most this long...
const maxPollAge = 30 * time.Second

// pollWindow is how recent device d's last good poll must be: three
// intervals, capped at 30 s, but never shorter than one interval plus its
// timeout (a slow device cannot poll more often than that).
func pollWindow(d Device) time.Duration {
	w := min(3*d.Interval, maxPollAge)
	return max(w, d.Interval+d.Timeout+time.Second)
}

// Health is the answer of /healthz.
type Health struct {
	OK      bool     `json:"ok"`
	Reasons []string `json:"reasons,omitempty"` // why not, in English, one per problem
	Devices int      `json:"devices_polled"`    // devices polled successfully within their window
}

// CheckHealth judges s: healthy when at least one device was polled
// successfully within its window and the buffer accepted the last commit.
func CheckHealth(s Snapshot) Health {
	var h Health
	var down []string
	for _, d := range s.Devices {
		last := d.Stats.LastGoodPoll
		if !last.IsZero() && s.Now.Sub(last) <= pollWindow(d) {
			h.Devices++
			continue
		}
		what := "never polled successfully"
		if !last.IsZero() {
			what = fmt.Sprintf("last good poll %s ago", s.Now.Sub(last).Round(time.Second))
		}
		if d.Stats.LastError != "" {
			what += ": " + d.Stats.LastError
		}
		down = append(down, d.Name+" "+what)
	}
	if h.Devices == 0 {
		if len(s.Devices) == 0 {
			h.Reasons = append(h.Reasons, "no devices configured")
		} else {
			h.Reasons = append(h.Reasons, "no device polled successfully recently ("+strings.Join(down, "; ")+")")
		}
	}
	if s.Commit.Err != nil {
		h.Reasons = append(h.Reasons, "the buffer refused the last commit: "+s.Commit.Err.Error())
	}
	h.OK = len(h.Reasons) == 0
	return h
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := CheckHealth(s.src())
	w.Header().Set("Content-Type", "application/json")
	if !h.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}
