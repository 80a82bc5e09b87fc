package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/docs/schema"
	"hazgate/internal/broker"
	"hazgate/internal/testkit"
	"hazgate/internal/web"
)

// events collects the gateway's event messages as the platform's broker
// receives them; every one must match docs/schema/event.schema.json.
type events struct {
	t *testing.T
	*testkit.Events
}

func watchEvents(t *testing.T, b *broker.Broker) *events {
	t.Helper()
	set, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	const topic = "hazgate/web-test-gw/event"
	var (
		mu  sync.Mutex
		bad []string
	)
	err = b.Subscribe(topic, func(m broker.Message) {
		if err := set.Validate(schema.Event, m.Payload); err != nil {
			mu.Lock()
			defer mu.Unlock()
			bad = append(bad, err.Error()+": "+string(m.Payload))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bad {
			t.Errorf("event against the schema: %s", b)
		}
	})
	return &events{t: t, Events: testkit.CollectEvents(t, b, topic)}
}

// wait returns the first event whose fields all equal want.
func (e *events) wait(want map[string]any) map[string]any {
	e.t.Helper()
	var found map[string]any
	testkit.WaitFor(e.t, 30*time.Second, "an event with "+jsonString(want)+" at the broker", func() bool {
		var ok bool
		found, ok = e.Find(want)
		return ok
	})
	return found
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// postAction posts body as the CLI does (no browser headers) and returns
// the status and the reply.
func postAction(t *testing.T, url, path string, body any) (int, web.ActionReply) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := client.Post(url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var rep web.ActionReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("POST %s: reply: %v", path, err)
	}
	return resp.StatusCode, rep
}

func apiAlarms(t *testing.T, url string) []web.AlarmJSON {
	t.Helper()
	_, body := get(t, url+"api/alarms")
	var out []web.AlarmJSON
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("api/alarms %q: %v", body, err)
	}
	return out
}

func alarmOf(list []web.AlarmJSON, tag, level string) (web.AlarmJSON, bool) {
	for _, a := range list {
		if a.Tag == tag && a.Level == level {
			return a, true
		}
	}
	return web.AlarmJSON{}, false
}

// TestOperateGateway: through the local API of a real gateway, an
// acknowledgement, a refused and an accepted reset and a bypass each
// change the gateway's state and reach the platform as an event with who,
// valid against the schema.
func TestOperateGateway(t *testing.T) {
	r := startRig(t, false, "")
	ev := watchEvents(t, r.broker)
	if err := r.plant.Set("LT-101", 19.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "LT-101 hh active and unacknowledged", func() bool {
		a, ok := alarmOf(apiAlarms(t, r.url), "LT-101", "hh")
		return ok && a.State == "active_unacked"
	})

	code, rep := postAction(t, r.url, "api/alarms/ack", web.ActionRequest{Tag: "LT-101", Level: "hh", By: "张三"})
	if code != http.StatusOK || !rep.OK || rep.Who != "local:张三" {
		t.Fatalf("ack: %d %+v", code, rep)
	}
	a, _ := alarmOf(apiAlarms(t, r.url), "LT-101", "hh")
	if a.State != "active_acked" || a.AckedBy != "local:张三" || a.AckedAt == nil {
		t.Fatalf("after the ack: %+v", a)
	}
	if h, _ := alarmOf(apiAlarms(t, r.url), "LT-101", "h"); h.State != "active_unacked" {
		t.Errorf("acknowledging hh touched h: %+v", h)
	}
	ev.wait(map[string]any{"kind": "alarm_acknowledged", "tag": "LT-101", "level": "hh", "who": "local:张三", "state": "active_acked"})
	code, rep = postAction(t, r.url, "api/alarms/ack", web.ActionRequest{Tag: "LT-101", Level: "hh", By: "张三"})
	if code != http.StatusConflict || !strings.Contains(rep.Error, "no unacknowledged alarm") {
		t.Errorf("second ack: %d %+v", code, rep)
	}
	code, rep = postAction(t, r.url, "api/alarms/ack", web.ActionRequest{Tag: "NO-SUCH"})
	if code != http.StatusNotFound {
		t.Errorf("ack of an unknown tag: %d %+v", code, rep)
	}

	// shelving: bounded, reported with who, until and reason
	code, rep = postAction(t, r.url, "api/alarms/shelve", web.ActionRequest{Tag: "LT-101", Level: "h", For: "13h", Reason: "x", By: "张三"})
	if code != http.StatusConflict || !strings.Contains(rep.Error, "longer than 12h") {
		t.Errorf("shelving beyond 12 h: %d %+v", code, rep)
	}
	code, rep = postAction(t, r.url, "api/alarms/shelve", web.ActionRequest{Tag: "LT-101", Level: "h", For: "2h", Reason: "液位计校验", By: "张三"})
	if code != http.StatusOK {
		t.Fatalf("shelve: %d %+v", code, rep)
	}
	if h, _ := alarmOf(apiAlarms(t, r.url), "LT-101", "h"); h.ShelvedUntil == nil || h.ShelvedBy != "local:张三" {
		t.Errorf("after the shelving: %+v", h)
	}
	sh := ev.wait(map[string]any{"kind": "alarm_shelved", "tag": "LT-101", "level": "h", "who": "local:张三", "reason": "液位计校验"})
	if sh["until"] == nil {
		t.Errorf("alarm_shelved without until: %v", sh)
	}
	code, rep = postAction(t, r.url, "api/alarms/unshelve", web.ActionRequest{Tag: "LT-101", Level: "h", By: "张三"})
	if code != http.StatusOK {
		t.Fatalf("unshelve: %d %+v", code, rep)
	}
	ev.wait(map[string]any{"kind": "alarm_unshelved", "tag": "LT-101", "level": "h", "who": "local:张三"})

	// IL-101 tripped at 19.0 >= 18.5: a reset is refused while it holds
	testkit.WaitFor(t, 10*time.Second, "IL-101 tripped", func() bool {
		il := r.gw.Interlocks()
		return len(il) == 1 && il[0].Tripped
	})
	code, rep = postAction(t, r.url, "api/interlocks/reset", web.ActionRequest{Name: "IL-101", By: "王工"})
	if code != http.StatusConflict || !strings.Contains(rep.Error, "still holds") {
		t.Fatalf("reset while the condition holds: %d %+v", code, rep)
	}
	code, rep = postAction(t, r.url, "api/interlocks/bypass", web.ActionRequest{Name: "IL-101", For: "9h", Reason: "too long", By: "王工"})
	if code != http.StatusConflict || !strings.Contains(rep.Error, "bypass_max") {
		t.Errorf("bypass beyond bypass_max: %d %+v", code, rep)
	}
	code, rep = postAction(t, r.url, "api/interlocks/bypass", web.ActionRequest{Name: "IL-101", For: "30m", Reason: "液位计校验", By: "王工"})
	if code != http.StatusOK || rep.Who != "local:王工" {
		t.Fatalf("bypass: %d %+v", code, rep)
	}
	on := ev.wait(map[string]any{"kind": "bypass_on", "interlock": "IL-101", "who": "local:王工", "reason": "液位计校验"})
	if until, err := time.Parse(time.RFC3339Nano, on["until"].(string)); err != nil || time.Until(until) < 25*time.Minute || time.Until(until) > 31*time.Minute {
		t.Errorf("bypass_on until %v (%v), want in 30 minutes", on["until"], err)
	}

	if err := r.plant.Set("LT-101", 10.0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "IL-101's condition to clear", func() bool {
		il := r.gw.Interlocks()
		return len(il) == 1 && !il[0].Condition
	})
	code, rep = postAction(t, r.url, "api/interlocks/reset", web.ActionRequest{Name: "IL-101", By: "王工"})
	if code != http.StatusOK {
		t.Fatalf("reset after the condition cleared: %d %+v", code, rep)
	}
	ev.wait(map[string]any{"kind": "interlock_reset", "interlock": "IL-101", "who": "local:王工"})
	code, rep = postAction(t, r.url, "api/interlocks/unbypass", web.ActionRequest{Name: "IL-101"})
	if code != http.StatusOK || rep.Who != "local" {
		t.Fatalf("unbypass: %d %+v", code, rep)
	}
	ev.wait(map[string]any{"kind": "bypass_off", "interlock": "IL-101", "who": "local"})
	if il := r.gw.Interlocks(); il[0].Tripped || il[0].Bypassed {
		t.Errorf("IL-101 after reset and unbypass: %+v", il[0])
	}
}
