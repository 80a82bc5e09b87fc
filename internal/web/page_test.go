package web_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

var valueCell = regexp.MustCompile(`<tr id="tag-([^"]+)" class="([^"]*)">.*?<td class="num value">([^<]*)</td><td>([^<]*)</td><td class="([^"]*)">`)

type row struct{ class, value, unit, quality string }

// tagRows reads the tag table of a rendered page (or a DOM dump).
func tagRows(html string) map[string]row {
	out := map[string]row{}
	for _, m := range valueCell.FindAllStringSubmatch(html, -1) {
		out[m[1]] = row{class: m[2], value: m[3], unit: m[4], quality: m[5]}
	}
	return out
}

// near says whether a value cell shows v (to within the float32 the PLC holds).
func near(cell string, v float64) bool {
	f, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
	return err == nil && f > v-0.01 && f < v+0.01
}

func TestStatusPage(t *testing.T) {
	r := startRig(t, false, "")
	if err := r.plant.Set("LT-101", 19.25); err != nil {
		t.Fatal(err)
	}
	var body string
	testkit.WaitFor(t, 30*time.Second, "the page to show LT-101 at 19.25 m in alarm", func() bool {
		_, body = get(t, r.url)
		rw := tagRows(body)["LT-101"]
		return near(rw.value, 19.25) && rw.class == "al-red" && strings.Contains(body, `data-tag="LT-101"`) &&
			strings.Contains(body, `class="il-tripped"`)
	})
	for _, want := range []string{
		`<html lang="zh-CN">`, "web-test-gw", "位号", "当前报警", "tank-farm-plc", "在线", "已连接",
		"T-101 储罐液位", "高高", `href="?lang=en"`, `<tr class="il-tripped" data-interlock="IL-101">`, "已动作",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("zh page lacks %q", want)
		}
	}
	rows := tagRows(body)
	for _, tag := range []string{"LT-101", "TT-102", "LSHH-101"} {
		rw, ok := rows[tag]
		if !ok {
			t.Errorf("no row for %s", tag)
			continue
		}
		if rw.value == "—" {
			t.Errorf("%s has no value", tag)
		}
	}
	if rows["LT-101"].unit != "m" || rows["LT-101"].quality != "q-good" {
		t.Errorf("LT-101 row %+v", rows["LT-101"])
	}
	for _, bad := range []string{"<link", "src=\"http", "@import"} {
		if strings.Contains(body, bad) {
			t.Errorf("page loads something from elsewhere: %q", bad)
		}
	}

	_, en := get(t, r.url+"?lang=en")
	for _, want := range []string{`<html lang="en">`, "Tag", "Active alarms", "Platform link", "connected", "HH", `href="?lang=zh"`} {
		if !strings.Contains(en, want) {
			t.Errorf("en page lacks %q", want)
		}
	}
	if strings.Contains(en, "当前报警") {
		t.Errorf("en page has Chinese labels")
	}

	// The value follows the plant.
	if err := r.plant.Set("LT-101", 12.5); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the page to show LT-101 at 12.5 m", func() bool {
		_, body = get(t, r.url)
		return near(tagRows(body)["LT-101"].value, 12.5)
	})
}

func TestStatusPageBadQuality(t *testing.T) {
	r := startRig(t, true, "")
	var body string
	testkit.WaitFor(t, 30*time.Second, "bad quality with a reason on the page", func() bool {
		_, body = get(t, r.url+"?lang=en")
		return tagRows(body)["LT-101"].quality == "q-bad"
	})
	if !strings.Contains(body, "down") {
		t.Errorf("the device state is not shown as down")
	}
	if !strings.Contains(body, "connection refused") {
		t.Errorf("the bad reason is not shown")
	}
}

func TestNotFound(t *testing.T) {
	r := startRig(t, false, "")
	if code, _ := get(t, r.url+"nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}
