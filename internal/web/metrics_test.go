package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"hazgate/internal/testkit"
)

// scrape fetches /metrics over HTTP and parses it as Prometheus does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := client.Get(url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics content type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (name=value pairs); ok false if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsScrape(t *testing.T) {
	r := startRig(t, false, "")
	// Drive LT-101 over HH (18.5 m) so an alarm is active.
	if err := r.plant.Set("LT-101", 19.25); err != nil {
		t.Fatal(err)
	}
	var fams map[string]*dto.MetricFamily
	testkit.WaitFor(t, 30*time.Second, "acknowledged records, an HH alarm, its event and good polls in /metrics", func() bool {
		fams = scrape(t, r.url)
		acked, _ := value(fams, "hazgate_uplink_acked_records_total")
		hh, _ := value(fams, "hazgate_alarms_active", "level", "hh")
		up, _ := value(fams, "hazgate_device_up", "device", "tank-farm-plc")
		tripped, _ := value(fams, "hazgate_interlock_tripped", "interlock", "IL-101")
		// The rules mark the alarm active before its event is committed:
		// wait for the event in the buffer too (start event + alarms).
		events, _ := value(fams, "hazgate_buffer_appended_records_total", "stream", "event")
		return acked > 0 && hh == 1 && up == 1 && tripped == 1 && events >= 2
	})
	after := r.gw.Status()

	types := map[string]dto.MetricType{
		"hazgate_build_info":                              dto.MetricType_GAUGE,
		"hazgate_uptime_seconds":                          dto.MetricType_GAUGE,
		"hazgate_device_polls_total":                      dto.MetricType_COUNTER,
		"hazgate_device_poll_failures_total":              dto.MetricType_COUNTER,
		"hazgate_device_overruns_total":                   dto.MetricType_COUNTER,
		"hazgate_device_last_poll_duration_seconds":       dto.MetricType_GAUGE,
		"hazgate_device_up":                               dto.MetricType_GAUGE,
		"hazgate_device_last_good_poll_timestamp_seconds": dto.MetricType_GAUGE,
		"hazgate_buffer_appended_records_total":           dto.MetricType_COUNTER,
		"hazgate_buffer_records":                          dto.MetricType_GAUGE,
		"hazgate_buffer_bytes":                            dto.MetricType_GAUGE,
		"hazgate_buffer_oldest_age_seconds":               dto.MetricType_GAUGE,
		"hazgate_buffer_dropped_records_total":            dto.MetricType_COUNTER,
		"hazgate_buffer_commits_total":                    dto.MetricType_COUNTER,
		"hazgate_buffer_file_bytes":                       dto.MetricType_GAUGE,
		"hazgate_buffer_last_commit_ok":                   dto.MetricType_GAUGE,
		"hazgate_broker_connected":                        dto.MetricType_GAUGE,
		"hazgate_uplink_published_messages_total":         dto.MetricType_COUNTER,
		"hazgate_uplink_published_records_total":          dto.MetricType_COUNTER,
		"hazgate_uplink_acked_messages_total":             dto.MetricType_COUNTER,
		"hazgate_uplink_acked_records_total":              dto.MetricType_COUNTER,
		"hazgate_uplink_inflight_messages":                dto.MetricType_GAUGE,
		"hazgate_uplink_reconnects_total":                 dto.MetricType_COUNTER,
		"hazgate_uplink_resent_records_total":             dto.MetricType_COUNTER,
		"hazgate_uplink_connect_failures_total":           dto.MetricType_COUNTER,
		"hazgate_alarms_active":                           dto.MetricType_GAUGE,
		"hazgate_alarms_active_by_colour":                 dto.MetricType_GAUGE,
		"hazgate_interlock_tripped":                       dto.MetricType_GAUGE,
		"hazgate_interlock_bypassed":                      dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %s, want %s", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	// The runtime's and the process's series size the box (heap, RSS).
	for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}

	must := func(name string, labels ...string) float64 {
		t.Helper()
		v, ok := value(fams, name, labels...)
		if !ok {
			t.Fatalf("%s%v: no such series", name, labels)
		}
		return v
	}
	if v := must("hazgate_build_info", "gateway", "web-test-gw"); v != 1 {
		t.Errorf("build_info = %v", v)
	}
	polls := must("hazgate_device_polls_total", "device", "tank-farm-plc")
	if polls < 1 || polls > float64(after.Devices[0].Stats.Polls) {
		t.Errorf("polls = %v, want 1..%d (the status read after the scrape)", polls, after.Devices[0].Stats.Polls)
	}
	if v := must("hazgate_device_poll_failures_total", "device", "tank-farm-plc"); v != 0 {
		t.Errorf("poll failures = %v against a healthy plant", v)
	}
	if v := must("hazgate_device_last_poll_duration_seconds", "device", "tank-farm-plc"); v <= 0 || v > 1 {
		t.Errorf("last poll duration = %v s", v)
	}
	if v := must("hazgate_device_last_good_poll_timestamp_seconds", "device", "tank-farm-plc"); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last good poll at %v, not recent", v)
	}
	data := must("hazgate_buffer_appended_records_total", "stream", "data")
	if data < polls || data > float64(after.Buffer.Data.NextSeq-1) {
		// every good poll appends 3 samples; at least one per poll
		t.Errorf("data records appended = %v, want %v..%d", data, polls, after.Buffer.Data.NextSeq-1)
	}
	if v := must("hazgate_buffer_appended_records_total", "stream", "event"); v < 2 {
		t.Errorf("event records appended = %v, want the start event and the alarms", v)
	}
	if v := must("hazgate_broker_connected"); v != 1 {
		t.Errorf("broker_connected = %v", v)
	}
	if v := must("hazgate_buffer_last_commit_ok"); v != 1 {
		t.Errorf("buffer_last_commit_ok = %v", v)
	}
	pub, acked := must("hazgate_uplink_published_records_total"), must("hazgate_uplink_acked_records_total")
	if acked < 1 || acked > pub {
		t.Errorf("acked %v of %v published records", acked, pub)
	}
	if v := must("hazgate_buffer_bytes"); v < 0 {
		t.Errorf("buffer_bytes = %v", v)
	}
	for _, level := range []string{"hh", "h", "l", "ll", "roc", "dev", "fault"} {
		if _, ok := value(fams, "hazgate_alarms_active", "level", level); !ok {
			t.Errorf("no alarms_active series for level %s", level)
		}
	}
	if v := must("hazgate_alarms_active", "level", "ll"); v != 0 {
		t.Errorf("ll alarms = %v with LT-101 at 19.25 m", v)
	}
	var byColour float64
	for _, c := range []string{"red", "orange", "yellow", "blue"} {
		byColour += must("hazgate_alarms_active_by_colour", "colour", c)
	}
	if byColour < 1 {
		t.Errorf("alarms by colour sum to %v with an HH alarm active", byColour)
	}
}
