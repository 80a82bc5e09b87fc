package web_test

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hazgate/internal/interop"
	"hazgate/internal/testkit"
)

type trend struct {
	Tag    string `json:"tag"`
	From   string `json:"from"`
	To     string `json:"to"`
	Points []struct {
		T     string  `json:"t"`
		Min   float64 `json:"min"`
		Max   float64 `json:"max"`
		Mean  float64 `json:"mean"`
		Count uint64  `json:"count"`
	} `json:"points"`
}

// waitTrend waits until the trend of tag over the last hour ends at v.
func waitTrend(t *testing.T, base, tag string, v float64) trend {
	t.Helper()
	var tr trend
	testkit.WaitFor(t, 30*time.Second, "the history trend of "+tag+" to reach "+strconv.FormatFloat(v, 'f', -1, 64), func() bool {
		code, body := get(t, base+"api/history?tag="+url.QueryEscape(tag)+"&span=1h&points=600")
		if code != 200 {
			t.Fatalf("trend: %d %s", code, body)
		}
		tr = trend{}
		if err := json.Unmarshal([]byte(body), &tr); err != nil {
			t.Fatalf("trend is not JSON: %v\n%s", err, body)
		}
		n := len(tr.Points)
		return n > 0 && tr.Points[n-1].Count > 0 && math.Abs(tr.Points[n-1].Max-v) < 0.01
	})
	return tr
}

// TestHistoryTrendAndExport: a real gateway records what the plant serves
// into its history; the trend endpoint shows the new value, the export
// endpoint gives back CSV rows of it, /metrics counts the writes, and bad
// queries are refused with a reason.
func TestHistoryTrendAndExport(t *testing.T) {
	r := startRig(t, false, "")
	start := time.Now().UTC().Add(-time.Second)
	if err := r.plant.Set("LT-101", 6.5); err != nil {
		t.Fatal(err)
	}
	tr := waitTrend(t, r.url, "LT-101", 6.5)
	if tr.Tag != "LT-101" {
		t.Fatalf("trend of %q", tr.Tag)
	}
	for i := 1; i < len(tr.Points); i++ {
		if tr.Points[i].T <= tr.Points[i-1].T {
			t.Fatalf("points out of order: %s after %s", tr.Points[i].T, tr.Points[i-1].T)
		}
	}

	end := time.Now().UTC().Add(time.Second)
	q := "tag=LT-101&from=" + start.Format(time.RFC3339Nano) + "&to=" + end.Format(time.RFC3339Nano)
	code, body := get(t, r.url+"api/history/export?"+q+"&format=csv")
	if code != 200 {
		t.Fatalf("export: %d %s", code, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) < 3 {
		t.Fatalf("export CSV (%v): %q", err, body)
	}
	if rows[0][0] != "time" || rows[0][2] != "value" {
		t.Fatalf("header %v", rows[0])
	}
	saw := false
	for _, row := range rows[1:] {
		tm, err := time.Parse(time.RFC3339Nano, row[0])
		if err != nil || tm.Before(start) || !tm.Before(end) || row[1] != "LT-101" {
			t.Fatalf("row %v outside the asked window or tag", row)
		}
		if v, _ := strconv.ParseFloat(row[2], 64); math.Abs(v-6.5) < 0.01 {
			saw = true
		}
	}
	if !saw {
		t.Fatalf("the export lacks LT-101 = 6.5:\n%s", body)
	}
	code, body = get(t, r.url+"api/history/export?"+q+"&format=json")
	var js []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &js) != nil || len(js) != len(rows)-1 {
		t.Fatalf("json export: %d, %d records for %d CSV rows", code, len(js), len(rows)-1)
	}

	_, metrics := get(t, r.url+"metrics")
	m := regexp.MustCompile(`(?m)^hazgate_history_written_samples_total (\d+)`).FindStringSubmatch(metrics)
	if m == nil || m[1] == "0" {
		t.Fatalf("metrics lack history writes:\n%s", metrics)
	}
	if !strings.Contains(metrics, "hazgate_history_dropped_samples_total 0") {
		t.Errorf("history dropped samples on an idle gateway")
	}
	_, page := get(t, r.url+"?lang=en&trend=TT-102")
	if !strings.Contains(page, `id="trend-svg"`) || !strings.Contains(page, `<option value="TT-102" selected>`) || !strings.Contains(page, "Local history") {
		t.Fatalf("the page lacks the trend section with TT-102 chosen")
	}

	for _, bad := range []struct{ q, want string }{
		{"", "tag is required"},
		{"tag=LT-101&from=yesterday", "not an RFC 3339 time"},
		{"tag=LT-101&span=-1h", "not a positive duration"},
		{"tag=LT-101&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "is not before"},
		{"tag=LT-101&points=0", "not a number 1..2000"},
	} {
		code, body := get(t, r.url+"api/history?"+bad.q)
		if code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("?%s: %d %q, want 400 with %q", bad.q, code, body, bad.want)
		}
	}
	if code, body := get(t, r.url+"api/history/export?tag=LT-101&format=xml"); code != 400 || !strings.Contains(body, "not csv or json") {
		t.Errorf("format=xml: %d %q", code, body)
	}
}

// TestHistoryDisabled: with history off there is no trend on the page and
// the API says why.
func TestHistoryDisabled(t *testing.T) {
	r := startRig(t, false, "web:\n  listen: 127.0.0.1:0\nhistory:\n  enabled: false\n")
	code, body := get(t, r.url+"api/history?tag=LT-101")
	if code != 404 || !strings.Contains(body, "history.enabled: false") {
		t.Fatalf("trend with history off: %d %q", code, body)
	}
	if _, page := get(t, r.url); strings.Contains(page, `id="trend-svg"`) || strings.Contains(page, `id="history"`) {
		t.Fatal("the page draws a trend with history off")
	}
}

var trendSVG = regexp.MustCompile(`<svg id="trend-svg"[^>]*data-tag="([^"]*)"[^>]*data-points="(\d+)"`)

// TestBrowserDrawsTrend: a real browser runs the page's script, which
// fetches the history of the chosen tag and draws it: the SVG has points
// and a mean line.
func TestBrowserDrawsTrend(t *testing.T) {
	chromium := interop.Require(t, "chromium")[0]
	r := startRig(t, false, "")
	if err := r.plant.Set("LT-101", 11.25); err != nil {
		t.Fatal(err)
	}
	waitTrend(t, r.url, "LT-101", 11.25)
	dom := dumpDOM(t, chromium, r.url+"?lang=en&trend=LT-101", "--virtual-time-budget=5000")
	m := trendSVG.FindStringSubmatch(dom)
	if m == nil {
		i := strings.Index(dom, `<section id="trend"`)
		t.Fatalf("the browser drew no trend: %.1500s", dom[max(i, 0):])
	}
	if m[1] != "LT-101" || m[2] == "0" {
		t.Fatalf("trend of %q with %s points", m[1], m[2])
	}
	if !strings.Contains(dom, `class="mean"`) || !strings.Contains(dom, "<polyline") {
		t.Fatalf("no mean line in the chart")
	}
}
