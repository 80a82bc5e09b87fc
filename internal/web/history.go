package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hazgate/internal/history"
)

// The local history (internal/history) as the status page serves it:
//
//	GET /api/history?tag=LT-101[&from=T&to=T | &span=24h][&points=300]
//	    the trend the page draws: JSON {tag, from, to, points:[{t,min,max,mean,count,bad}]}
//	GET /api/history/export?tag=LT-101&from=T&to=T[&format=csv|json]
//	    every record of the window, as `hazgate history export` writes it
//
// Times are RFC 3339 (2026-12-01T00:00:00Z); to defaults to now, from to
// span (default 24h) before to.

// HistoryStats are the history's counters in a Snapshot.
type HistoryStats struct {
	Store  history.Stats
	Writer history.WriterStats
}

const (
	defaultTrendSpan   = 24 * time.Hour
	defaultTrendPoints = 300
	// exportWriteTimeout replaces the server's write timeout for an
	// export: 30 days of a tag polled every second is millions of rows.
	exportWriteTimeout = 10 * time.Minute
)

func (s *Server) registerHistory(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/history", s.serveTrend)
	mux.HandleFunc("GET /api/history/export", s.serveExport)
}

// historyQuery is a parsed request for one tag over a window.
type historyQuery struct {
	tag      string
	from, to time.Time
}

func parseHistoryQuery(r *http.Request, now time.Time) (historyQuery, error) {
	q := r.URL.Query()
	hq := historyQuery{tag: strings.TrimSpace(q.Get("tag")), to: now}
	if hq.tag == "" {
		return hq, errors.New("tag is required (?tag=LT-101)")
	}
	parse := func(name string) (time.Time, bool, error) {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, false, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return t, false, fmt.Errorf("%s=%q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)", name, v)
		}
		return t, true, nil
	}
	to, ok, err := parse("to")
	if err != nil {
		return hq, err
	}
	if ok {
		hq.to = to
	}
	span := defaultTrendSpan
	if v := q.Get("span"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return hq, fmt.Errorf("span=%q is not a positive duration (e.g. 24h)", v)
		}
		span = d
	}
	hq.from = hq.to.Add(-span)
	from, ok, err := parse("from")
	if err != nil {
		return hq, err
	}
	if ok {
		hq.from = from
	}
	if !hq.from.Before(hq.to) {
		return hq, fmt.Errorf("from %s is not before to %s", hq.from.UTC().Format(time.RFC3339), hq.to.UTC().Format(time.RFC3339))
	}
	return hq, nil
}

// historyError answers a failed history request: 404 when history is
// off, 400 for a bad query, 500 for a failed read.
func (s *Server) historyError(w http.ResponseWriter, err error, status int) {
	if errors.Is(err, history.ErrDisabled) {
		status = http.StatusNotFound
	}
	if status >= 500 {
		s.log.Error("history request", "err", err)
	}
	http.Error(w, err.Error(), status)
}

type trendResponse struct {
	Tag    string          `json:"tag"`
	From   string          `json:"from"` // the first record's time when later than asked
	To     string          `json:"to"`
	Points []history.Point `json:"points"`
}

func (s *Server) serveTrend(w http.ResponseWriter, r *http.Request) {
	if s.hist == nil {
		s.historyError(w, history.ErrDisabled, http.StatusNotFound)
		return
	}
	hq, err := parseHistoryQuery(r, time.Now())
	if err != nil {
		s.historyError(w, err, http.StatusBadRequest)
		return
	}
	points := defaultTrendPoints
	if v := r.URL.Query().Get("points"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > history.MaxPoints {
			s.historyError(w, fmt.Errorf("points=%q is not a number 1..%d", v, history.MaxPoints), http.StatusBadRequest)
			return
		}
		points = n
	}
	pts, start, err := history.Trend(s.hist, hq.tag, hq.from, hq.to, points)
	if err != nil {
		s.historyError(w, err, http.StatusInternalServerError)
		return
	}
	if pts == nil {
		pts = []history.Point{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(trendResponse{Tag: hq.tag, From: history.FormatTime(start), To: history.FormatTime(hq.to), Points: pts})
}

func (s *Server) serveExport(w http.ResponseWriter, r *http.Request) {
	if s.hist == nil {
		s.historyError(w, history.ErrDisabled, http.StatusNotFound)
		return
	}
	hq, err := parseHistoryQuery(r, time.Now())
	if err != nil {
		s.historyError(w, err, http.StatusBadRequest)
		return
	}
	format := history.FormatCSV
	if v := r.URL.Query().Get("format"); v != "" {
		if format, err = history.ParseFormat(v); err != nil {
			s.historyError(w, err, http.StatusBadRequest)
			return
		}
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	ctype := "text/csv; charset=utf-8"
	if format == history.FormatJSON {
		ctype = "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s_%s_%s.%s"`,
		fileSafe(hq.tag), hq.from.UTC().Format("20060102T150405Z"), hq.to.UTC().Format("20060102T150405Z"), format))
	if _, err := history.Export(s.hist, w, format, hq.tag, hq.from, hq.to); err != nil {
		// the header is gone: all that is left is to cut the body short
		// (the client sees a truncated transfer) and log why
		s.log.Error("history export", "tag", hq.tag, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// fileSafe keeps a tag usable in a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == '"' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

// historyRows are the history card's lines on the page.
func historyRows(h *HistoryStats, t map[string]string) []kv {
	if h == nil {
		return nil
	}
	st, ws := h.Store, h.Writer
	rows := []kv{
		{t["hist_samples"], strconv.FormatUint(st.Raw, 10)},
		{t["hist_aggregates"], strconv.FormatUint(st.Aggregates, 10)},
		{t["buf_bytes"], fmtBytes(st.Bytes)},
		{t["hist_dropped"], strconv.FormatUint(ws.Dropped+ws.Failed, 10)},
		{t["hist_deleted"], strconv.FormatUint(st.Deleted, 10)},
	}
	if ws.LastError != "" {
		rows = append(rows, kv{t["buf_error"], ws.LastError})
	}
	return rows
}

// historyCollector adds the history's counters to /metrics.
type historyCollector struct {
	src                                  Source
	records, bytes, fileBytes            *prometheus.Desc
	written, dropped, failed, downsample *prometheus.Desc
	deleted, expired                     *prometheus.Desc
}

func newHistoryCollector(src Source) *historyCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hazgate_history_"+name, help, labels, nil)
	}
	return &historyCollector{
		src:        src,
		records:    d("records", "Records in the local history, by kind (raw samples, aggregates).", "kind"),
		bytes:      d("bytes", "Stored record bytes, what history.max_bytes limits."),
		fileBytes:  d("file_bytes", "Size of the history file on disk."),
		written:    d("written_samples_total", "Samples written to the history since start."),
		dropped:    d("dropped_samples_total", "Samples not written to the history because its queue was full (the history disk was slower than acquisition), since start."),
		failed:     d("failed_samples_total", "Samples lost to a failed history write, since start."),
		downsample: d("downsampled_samples_total", "Raw samples folded into aggregates because of max_bytes, over the file's life."),
		deleted:    d("deleted_records_total", "Records deleted within max_age because even downsampled they did not fit max_bytes, over the file's life."),
		expired:    d("expired_records_total", "Records deleted for being older than max_age, over the file's life."),
	}
}

func (c *historyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.fileBytes, c.written, c.dropped, c.failed, c.downsample, c.deleted, c.expired} {
		ch <- d
	}
}

func (c *historyCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.src().History
	if h == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.records, float64(h.Store.Raw), "raw")
	gauge(c.records, float64(h.Store.Aggregates), "aggregate")
	gauge(c.bytes, float64(h.Store.Bytes))
	gauge(c.fileBytes, float64(h.Store.FileSize))
	counter(c.written, h.Writer.Written)
	counter(c.dropped, h.Writer.Dropped)
	counter(c.failed, h.Writer.Failed)
	counter(c.downsample, h.Store.Downsampled)
	counter(c.deleted, h.Store.Deleted)
	counter(c.expired, h.Store.Expired)
}

// trendTag is one entry of the trend's tag selector.
type trendTag struct {
	Name, Label string
	Selected    bool
}

// trendTags lists the configured analog tags, then the digital ones, for
// the selector; want (?trend=TAG) is preselected, else the first.
func trendTags(s Snapshot, on bool, want string) []trendTag {
	if !on {
		return nil
	}
	var analog, digital []trendTag
	for _, d := range s.Devices {
		for _, t := range d.Tags {
			tt := trendTag{Name: t.Name, Label: strings.TrimSpace(t.Description + " " + t.Unit), Selected: t.Name == want}
			if t.Digital {
				digital = append(digital, tt)
			} else {
				analog = append(analog, tt)
			}
		}
	}
	out := append(analog, digital...)
	picked := false
	for _, t := range out {
		picked = picked || t.Selected
	}
	if !picked && len(out) > 0 {
		out[0].Selected = true
	}
	return out
}
