package web

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hazgate/internal/model"
	"hazgate/rules"
)

// alarmLevels are always exported, at zero when none is active, so that a
// query for "hh alarms" has a series before the first one.
var alarmLevels = []string{"hh", "h", "l", "ll", rules.LevelRate, rules.LevelDeviation, rules.LevelFault}

// alarmColours likewise for the colours of GB/T 50493 priorities.
var alarmColours = []string{"red", "orange", "yellow", "blue"}

// collector turns a Snapshot taken at scrape time into metrics.
type collector struct {
	src Source

	info, uptime                                         *prometheus.Desc
	polls, failures, overruns, pollSeconds, up, lastGood *prometheus.Desc
	appended, records, bytes, oldest, dropped            *prometheus.Desc
	commits, fileBytes, commitOK                         *prometheus.Desc
	connected, published, pubRecords, acked, ackRecords  *prometheus.Desc
	resent                                               *prometheus.Desc
	inflight, reconnects, connectFailures                *prometheus.Desc
	alarms, alarmsColour                                 *prometheus.Desc
	ilTripped, ilBypassed                                *prometheus.Desc
}

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hazgate_"+name, help, labels, nil)
	}
	return &collector{
		src:    src,
		info:   d("build_info", "Always 1; the labels name the gateway and its version.", "gateway", "version", "config_hash"),
		uptime: d("uptime_seconds", "Seconds since the gateway started."),

		polls:       d("device_polls_total", "Polls started per device.", "device"),
		failures:    d("device_poll_failures_total", "Failed polls per device.", "device"),
		overruns:    d("device_overruns_total", "Ticks skipped because the previous poll was still running.", "device"),
		pollSeconds: d("device_last_poll_duration_seconds", "Duration of the last poll (round trips of one cycle), failed or not.", "device"),
		up:          d("device_up", "1 when the last poll of the device succeeded.", "device"),
		lastGood:    d("device_last_good_poll_timestamp_seconds", "Unix time of the end of the last successful poll; 0 if none.", "device"),

		appended:  d("buffer_appended_records_total", "Records ever appended to the buffer per stream (data = samples acquired), over the buffer file's life.", "stream"),
		records:   d("buffer_records", "Records in the buffer not yet acknowledged by the broker.", "stream"),
		bytes:     d("buffer_bytes", "Stored record bytes, what buffer.max_bytes limits."),
		oldest:    d("buffer_oldest_age_seconds", "Age of the oldest record waiting in the buffer; 0 when empty.", "stream"),
		dropped:   d("buffer_dropped_records_total", "Records dropped by the buffer's size or age limit, over the file's life.", "stream"),
		commits:   d("buffer_commits_total", "Write transactions committed since the buffer was opened."),
		fileBytes: d("buffer_file_bytes", "Size of the buffer file on disk."),
		commitOK:  d("buffer_last_commit_ok", "1 when the pipeline's last commit to the buffer was durable."),

		connected:       d("broker_connected", "1 while connected to the broker."),
		published:       d("uplink_published_messages_total", "Data and event messages handed to the broker connection."),
		pubRecords:      d("uplink_published_records_total", "Records in the published messages."),
		acked:           d("uplink_acked_messages_total", "Messages the broker acknowledged."),
		ackRecords:      d("uplink_acked_records_total", "Records in acknowledged messages."),
		resent:          d("uplink_resent_records_total", "Acknowledged records published again after a lost connection, in case the broker lost them."),
		inflight:        d("uplink_inflight_messages", "Publishes awaiting the broker's acknowledgement."),
		reconnects:      d("uplink_reconnects_total", "Broker connections lost after having been up."),
		connectFailures: d("uplink_connect_failures_total", "Failed attempts to connect to a broker."),

		alarms:       d("alarms_active", "Alarms and faults not in the normal state, by level.", "level"),
		alarmsColour: d("alarms_active_by_colour", "Alarms and faults not in the normal state, by priority colour.", "colour"),

		ilTripped:  d("interlock_tripped", "1 while the interlock is tripped (until reset).", "interlock"),
		ilBypassed: d("interlock_bypassed", "1 while the interlock is bypassed.", "interlock"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.uptime, c.polls, c.failures, c.overruns, c.pollSeconds, c.up, c.lastGood,
		c.appended, c.records, c.bytes, c.oldest, c.dropped, c.commits, c.fileBytes, c.commitOK,
		c.connected, c.published, c.pubRecords, c.acked, c.ackRecords, c.resent, c.inflight, c.reconnects, c.connectFailures,
		c.alarms, c.alarmsColour, c.ilTripped, c.ilBypassed,
	} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.info, 1, s.GatewayID, s.Version, s.ConfigHash)
	gauge(c.uptime, s.Uptime.Seconds())

	for _, d := range s.Devices {
		st := d.Stats
		counter(c.polls, float64(st.Polls), d.Name)
		counter(c.failures, float64(st.TotalFailures), d.Name)
		counter(c.overruns, float64(st.Overruns), d.Name)
		gauge(c.pollSeconds, st.LastPollDuration.Seconds(), d.Name)
		gauge(c.up, b2f(st.State == "up"), d.Name)
		var last float64
		if !st.LastGoodPoll.IsZero() {
			last = float64(st.LastGoodPoll.UnixNano()) / 1e9
		}
		gauge(c.lastGood, last, d.Name)
	}

	b := s.Buffer
	for _, st := range model.Streams {
		ss := b.Stream(st)
		name := st.String()
		appended := float64(0)
		if ss.NextSeq > 0 {
			appended = float64(ss.NextSeq - 1)
		}
		counter(c.appended, appended, name)
		gauge(c.records, float64(ss.Records), name)
		age := float64(0)
		if !ss.OldestTime.IsZero() {
			age = max(s.Now.Sub(ss.OldestTime).Seconds(), 0)
		}
		gauge(c.oldest, age, name)
		counter(c.dropped, float64(ss.Dropped), name)
	}
	gauge(c.bytes, float64(b.Bytes))
	counter(c.commits, float64(b.Commits))
	gauge(c.fileBytes, float64(b.FileSize))
	gauge(c.commitOK, b2f(s.Commit.Err == nil))

	u := s.Uplink
	gauge(c.connected, b2f(u.Connected))
	counter(c.published, float64(u.PublishedMsgs))
	counter(c.pubRecords, float64(u.PublishedRecords))
	counter(c.acked, float64(u.AckedMsgs))
	counter(c.ackRecords, float64(u.AckedRecords))
	counter(c.resent, float64(u.ResentRecords))
	gauge(c.inflight, float64(u.InFlight))
	counter(c.reconnects, float64(u.Reconnects))
	counter(c.connectFailures, float64(u.ConnectFailures))

	byLevel := map[string]int{}
	byColour := map[string]int{}
	for _, a := range s.Active {
		byLevel[a.Level]++
		byColour[a.Colour]++
	}
	for _, l := range alarmLevels {
		gauge(c.alarms, float64(byLevel[l]), l)
		delete(byLevel, l)
	}
	for l, n := range byLevel { // a level added later still shows
		gauge(c.alarms, float64(n), l)
	}
	for _, col := range alarmColours {
		gauge(c.alarmsColour, float64(byColour[col]), col)
		delete(byColour, col)
	}
	for col, n := range byColour {
		if col != "" {
			gauge(c.alarmsColour, float64(n), col)
		}
	}
	for _, il := range s.Interlocks {
		gauge(c.ilTripped, b2f(il.Tripped), il.Name)
		gauge(c.ilBypassed, b2f(il.Bypassed), il.Name)
	}
}

// metricsHandler serves a registry of this server's own, so two gateways
// in one process (tests) never share metrics.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process's own series (heap, GC, goroutines,
	// RSS, open files) are what an integrator needs to size a box.
	reg.MustRegister(newCollector(s.src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newHistoryCollector(s.src)) // history.go
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
