package web_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"hazgate/internal/interop"
	"hazgate/internal/testkit"
)

// dumpDOM loads url in headless Chromium and returns the DOM after load
// (and after extra flags, such as a virtual time budget, allow).
func dumpDOM(t *testing.T, chromium, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir())
	cmd.Args = append(append(cmd.Args, extra...), "--dump-dom", url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, errb.String())
	}
	return out.String()
}

// TestBrowserShowsPlantValue: a real browser renders the page and shows
// the value the simulated plant serves, in both languages, and the new
// value after the plant changes it.
func TestBrowserShowsPlantValue(t *testing.T) {
	chromium := interop.Require(t, "chromium")[0]
	r := startRig(t, false, "")
	for i, target := range []float64{7.75, 13.5} {
		if err := r.plant.Set("LT-101", target); err != nil {
			t.Fatal(err)
		}
		// the gateway has it first; then the browser must show it
		testkit.WaitFor(t, 30*time.Second, "the gateway to hold the new LT-101", func() bool {
			_, body := get(t, r.url)
			return near(tagRows(body)["LT-101"].value, target)
		})
		lang := []string{"", "?lang=en"}[i]
		dom := dumpDOM(t, chromium, r.url+lang)
		rows := tagRows(dom)
		if !near(rows["LT-101"].value, target) {
			t.Fatalf("browser shows LT-101 = %q, want %v (rows %+v)", rows["LT-101"].value, target, rows)
		}
		if want := []string{"位号", "Tag"}[i]; !strings.Contains(dom, want) {
			t.Errorf("browser page %q lacks %q", lang, want)
		}
		if !strings.Contains(dom, "web-test-gw") {
			t.Errorf("browser page lacks the gateway id")
		}
	}
}

var refreshed = regexp.MustCompile(`<body data-refreshed="(\d+)"`)

// TestBrowserRefreshes: the page's script replaces the live part with a
// fresh copy every 2 s (7 s of virtual time: at least two refreshes), and
// the refreshed copy still shows the plant's value.
func TestBrowserRefreshes(t *testing.T) {
	chromium := interop.Require(t, "chromium")[0]
	r := startRig(t, false, "")
	if err := r.plant.Set("LT-101", 4.5); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the gateway to hold LT-101 = 4.5", func() bool {
		_, body := get(t, r.url)
		return near(tagRows(body)["LT-101"].value, 4.5)
	})
	dom := dumpDOM(t, chromium, r.url+"?lang=en", "--virtual-time-budget=7000")
	m := refreshed.FindStringSubmatch(dom)
	if m == nil || m[1] == "0" {
		t.Fatalf("the page did not refresh itself (body: %.200q)", dom[strings.Index(dom, "<body"):])
	}
	if v := tagRows(dom)["LT-101"].value; !near(v, 4.5) {
		t.Fatalf("after %s refreshes LT-101 shows %q", m[1], v)
	}
	if !strings.Contains(dom, "refreshes every 2 s") {
		t.Errorf("a refresh failed: the header says so")
	}
}

// TestBrowserAck: in a real browser, an operator types a name and clicks
// Acknowledge on the high-high alarm the simulated plant's overfill
// raised; the row then shows the alarm acknowledged by "local:<name>"
// without a reload, the gateway's state changed, and the platform's
// broker received the alarm_acknowledged event with who, valid against
// the event schema. Shelving the high alarm through the dialog and
// unshelving it show on the page and at the broker too.
func TestBrowserAck(t *testing.T) {
	chromium := interop.Require(t, "chromium")[0]
	r := startRig(t, false, "")
	ev := watchEvents(t, r.broker)
	if err := r.plant.Set("LT-101", 19.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "LT-101 hh active and unacknowledged", func() bool {
		a, ok := alarmOf(apiAlarms(t, r.url), "LT-101", "hh")
		return ok && a.State == "active_unacked"
	})
	b := startBrowser(t, chromium, r.url+"?lang=en")
	row := `#alarms tr[data-tag="LT-101"][data-level="hh"]`
	button := row + ` button[data-op="ack"]`
	b.waitJS(60*time.Second, "the page to show the Acknowledge button of LT-101 hh",
		fmt.Sprintf(`!!document.querySelector(%q)`, button))
	var state string
	b.eval(fmt.Sprintf(`document.querySelector(%q).textContent`, row+" .al-state"), &state)
	if state != "active, unacknowledged" {
		t.Fatalf("before the click the row says %q", state)
	}
	b.typeText("#op-name", "张三")
	b.click(button)
	b.waitJS(30*time.Second, "the row to show LT-101 hh acknowledged by local:张三", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && r.querySelector(".al-state").textContent === "active, acknowledged" &&
			r.querySelector(".acked").textContent.startsWith("local:张三") && !r.querySelector("button[data-op=ack]");
	})()`, row))
	var result string
	b.eval(`document.getElementById("op-result").textContent`, &result)
	if !strings.HasPrefix(result, "Done:") || !strings.Contains(result, "local:张三") {
		t.Errorf("the page reports %q", result)
	}
	if a, _ := alarmOf(apiAlarms(t, r.url), "LT-101", "hh"); a.State != "active_acked" || a.AckedBy != "local:张三" {
		t.Errorf("the gateway holds %+v", a)
	}
	ev.wait(map[string]any{"kind": "alarm_acknowledged", "tag": "LT-101", "level": "hh", "who": "local:张三"})

	// shelve the h alarm through the dialog, then put it back
	hrow := `#alarms tr[data-tag="LT-101"][data-level="h"]`
	b.click(hrow + ` button[data-op="shelve"]`)
	b.waitJS(10*time.Second, "the shelve dialog", `document.getElementById("op-dialog").open`)
	b.eval(`document.getElementById("op-for").value = "2h"`, nil)
	b.typeText("#op-reason", "液位计校验")
	b.click(`#op-dialog button[value="ok"]`)
	b.waitJS(30*time.Second, "the row to show LT-101 h shelved", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && r.textContent.includes("shelved until") && r.textContent.includes("local:张三") && !!r.querySelector("button[data-op=unshelve]");
	})()`, hrow))
	ev.wait(map[string]any{"kind": "alarm_shelved", "tag": "LT-101", "level": "h", "who": "local:张三", "reason": "液位计校验"})
	b.click(hrow + ` button[data-op="unshelve"]`)
	b.waitJS(30*time.Second, "the row to show LT-101 h no longer shelved", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && !r.textContent.includes("shelved until") && !!r.querySelector("button[data-op=shelve]");
	})()`, hrow))
	ev.wait(map[string]any{"kind": "alarm_unshelved", "tag": "LT-101", "level": "h", "who": "local:张三"})
}

// TestBrowserInterlockButtons: in a real browser, Bypass opens the dialog,
// a duration and a reason typed there bypass the tripped interlock, Reset
// is refused on the page while the overfill lasts and accepted once the
// plant's level is back, and End bypass ends it; each state shows on the
// page and reaches the broker with who.
func TestBrowserInterlockButtons(t *testing.T) {
	chromium := interop.Require(t, "chromium")[0]
	r := startRig(t, false, "")
	ev := watchEvents(t, r.broker)
	if err := r.plant.Set("LT-101", 19.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "IL-101 tripped", func() bool {
		il := r.gw.Interlocks()
		return len(il) == 1 && il[0].Tripped && il[0].Condition
	})
	b := startBrowser(t, chromium, r.url)
	row := `#interlocks tr[data-interlock="IL-101"]`
	b.waitJS(60*time.Second, "the tripped IL-101 with its buttons",
		fmt.Sprintf(`!!document.querySelector(%q)`, row+`.il-tripped button[data-op="bypass"]`))
	b.typeText("#op-name", "王工")

	b.click(row + ` button[data-op="bypass"]`)
	b.waitJS(10*time.Second, "the bypass dialog", `document.getElementById("op-dialog").open`)
	b.eval(`document.getElementById("op-for").value = "1h"`, nil)
	b.typeText("#op-reason", "液位计校验")
	b.click(`#op-dialog button[value="ok"]`)
	b.waitJS(30*time.Second, "the row to show the bypass", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && r.textContent.includes("local:王工: 液位计校验") && !!r.querySelector("button[data-op=unbypass]");
	})()`, row))
	on := ev.wait(map[string]any{"kind": "bypass_on", "interlock": "IL-101", "who": "local:王工", "reason": "液位计校验"})
	if until, err := time.Parse(time.RFC3339Nano, on["until"].(string)); err != nil || time.Until(until) < 55*time.Minute || time.Until(until) > 61*time.Minute {
		t.Errorf("bypass_on until %v (%v), want in an hour", on["until"], err)
	}

	// a reset while the condition holds: the page says why it was refused
	b.eval(`window.confirm = () => true`, nil) // the reset's "are you sure"
	b.click(row + ` button[data-op="reset"]`)
	b.waitJS(30*time.Second, "the refusal on the page",
		`document.getElementById("op-result").textContent.includes("the trip condition still holds")`)
	var class string
	b.eval(fmt.Sprintf(`document.querySelector(%q).className`, row), &class)
	if class != "il-tripped" {
		t.Fatalf("after a refused reset the row is %q", class)
	}

	if err := r.plant.Set("LT-101", 10.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "IL-101's condition to clear", func() bool {
		il := r.gw.Interlocks()
		return len(il) == 1 && !il[0].Condition
	})
	b.click(row + ` button[data-op="reset"]`)
	b.waitJS(30*time.Second, "the row to show IL-101 reset (bypass still on)", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && r.className === "il-bypassed" && !r.querySelector("button[data-op=reset]");
	})()`, row))
	ev.wait(map[string]any{"kind": "interlock_reset", "interlock": "IL-101", "who": "local:王工"})

	b.click(row + ` button[data-op="unbypass"]`)
	b.waitJS(30*time.Second, "the row to show IL-101 normal", fmt.Sprintf(`(() => {
		const r = document.querySelector(%q);
		return !!r && r.className === "il-normal" && !!r.querySelector("button[data-op=bypass]");
	})()`, row))
	ev.wait(map[string]any{"kind": "bypass_off", "interlock": "IL-101", "who": "local:王工"})
}
