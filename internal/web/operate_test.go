package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/rules"
	"hazgate/rules/interlock"
)

// fakeOperator records what it was asked and answers with err.
type fakeOperator struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeOperator) note(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return f.err
}

func (f *fakeOperator) Ack(_ context.Context, tag, level, who string) error {
	return f.note("ack " + tag + " " + level + " " + who)
}

func (f *fakeOperator) ResetInterlock(_ context.Context, name, who string) error {
	return f.note("reset " + name + " " + who)
}

func (f *fakeOperator) Bypass(_ context.Context, name, who, reason string, d time.Duration) error {
	return f.note(fmt.Sprintf("bypass %s %s %s %s", name, who, reason, d))
}

func (f *fakeOperator) Unbypass(_ context.Context, name, who string) error {
	return f.note("unbypass " + name + " " + who)
}

func (f *fakeOperator) Shelve(_ context.Context, tag, level, who, reason string, d time.Duration) error {
	return f.note(fmt.Sprintf("shelve %s %s %s %s %s", tag, level, who, reason, d))
}

func (f *fakeOperator) Unshelve(_ context.Context, tag, level, who string) error {
	return f.note("unshelve " + tag + " " + level + " " + who)
}

func (f *fakeOperator) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func testSnapshot() Snapshot {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return Snapshot{Now: now, GatewayID: "gw-t",
		Active: []rules.ActiveAlarm{
			{Tag: "LT-101", Device: "plc", Level: "hh", State: rules.ActiveUnacked, Condition: true, Colour: "red", Priority: 1, Since: now, Value: 18.9, Limit: 18.5},
			{Tag: "GT-201", Device: "gas", Level: "h", State: rules.ActiveAcked, Condition: true, Colour: "orange", Priority: 2, Since: now, Value: 30, Limit: 25, AckedBy: "local:王工", AckedAt: now,
				ShelvedUntil: now.Add(2 * time.Hour), ShelvedBy: "local:李工"},
		},
		Interlocks: []interlock.Status{
			{Name: "IL-101", Tripped: true, TrippedAt: now, Condition: true},
			{Name: "IL-102", Bypassed: true, BypassUntil: now.Add(time.Hour), BypassWho: "local:李工", BypassReason: "calibration"},
		}}
}

func newTestServer(t *testing.T, cfg config.Web, ops Operator) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(Options{Config: cfg, Source: testSnapshot, Operator: ops})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type post struct {
	path, body, ctype, host string
	header                  map[string]string
	user, pass              string
}

func (p post) do(t *testing.T, s *Server) (int, ActionReply) {
	t.Helper()
	req := httptest.NewRequest("POST", p.path, strings.NewReader(p.body))
	req.Host = "127.0.0.1:8080"
	if p.host != "" {
		req.Host = p.host
	}
	req.Header.Set("Content-Type", "application/json")
	if p.ctype != "" {
		req.Header.Set("Content-Type", p.ctype)
	}
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	if p.user != "" {
		req.SetBasicAuth(p.user, p.pass)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	var rep ActionReply
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
			t.Fatalf("%s: reply %q: %v", p.path, w.Body.String(), err)
		}
	}
	return w.Code, rep
}

// TestActionsWho: each action reaches the Operator with who made of the
// account ("local" on loopback without a password) and the typed name.
func TestActionsWho(t *testing.T) {
	ops := &fakeOperator{}
	s := newTestServer(t, config.Web{}, ops)
	for _, tc := range []struct {
		path, body, want string
	}{
		{"/api/alarms/ack", `{"tag":"LT-101","level":"hh","by":"张三"}`, "ack LT-101 hh local:张三"},
		{"/api/alarms/ack", `{"tag":" LT-101 "}`, "ack LT-101  local"},
		{"/api/interlocks/reset", `{"name":"IL-101","by":"王工"}`, "reset IL-101 local:王工"},
		{"/api/interlocks/bypass", `{"name":"IL-101","for":"30m","reason":"校验液位计","by":"李工"}`, "bypass IL-101 local:李工 校验液位计 30m0s"},
		{"/api/interlocks/unbypass", `{"name":"IL-102"}`, "unbypass IL-102 local"},
		{"/api/alarms/shelve", `{"tag":"GT-201","level":"h","for":"2h","reason":"探头标定","by":"李工"}`, "shelve GT-201 h local:李工 探头标定 2h0m0s"},
		{"/api/alarms/unshelve", `{"tag":"GT-201","level":"h","by":"李工"}`, "unshelve GT-201 h local:李工"},
	} {
		code, rep := post{path: tc.path, body: tc.body, header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}}.do(t, s)
		if code != http.StatusOK || !rep.OK {
			t.Errorf("%s %s: %d %+v", tc.path, tc.body, code, rep)
		}
		if got := ops.last(); got != tc.want {
			t.Errorf("%s: operator got %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestActionsWhoBasicAuth: behind a password, the account is the user
// who authenticated, whatever the body claims.
func TestActionsWhoBasicAuth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ops := &fakeOperator{}
	s := newTestServer(t, config.Web{Listen: "0.0.0.0:0", Username: "engineer", PasswordFile: pw}, ops)
	code, _ := post{path: "/api/alarms/ack", body: `{"tag":"LT-101"}`}.do(t, s)
	if code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d", code)
	}
	// a network address is fine with a password (no rebinding check)
	code, rep := post{path: "/api/alarms/ack", body: `{"tag":"LT-101","by":"local"}`, host: "10.0.0.5:8080", user: "engineer", pass: "horse"}.do(t, s)
	if code != http.StatusOK || rep.Who != "engineer:local" || ops.last() != "ack LT-101  engineer:local" {
		t.Fatalf("with credentials: %d %+v, operator %q", code, rep, ops.last())
	}
	code, rep = post{path: "/api/alarms/ack", body: `{"tag":"LT-101"}`, host: "10.0.0.5:8080", user: "engineer", pass: "horse"}.do(t, s)
	if code != http.StatusOK || rep.Who != "engineer" {
		t.Fatalf("without a name: %d %+v", code, rep)
	}
}

// TestActionsRefused: cross-origin, rebinding, form posts, GET and bad
// input never reach the Operator.
func TestActionsRefused(t *testing.T) {
	ops := &fakeOperator{}
	s := newTestServer(t, config.Web{}, ops)
	ack := `{"tag":"LT-101","level":"hh"}`
	for _, tc := range []struct {
		name string
		p    post
		want int
	}{
		{"cross-site fetch", post{path: "/api/alarms/ack", body: ack, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, http.StatusForbidden},
		{"same-site other port", post{path: "/api/alarms/ack", body: ack, header: map[string]string{"Sec-Fetch-Site": "same-site"}}, http.StatusForbidden},
		{"foreign Origin", post{path: "/api/alarms/ack", body: ack, header: map[string]string{"Origin": "http://evil.example"}}, http.StatusForbidden},
		{"null Origin", post{path: "/api/alarms/ack", body: ack, header: map[string]string{"Origin": "null"}}, http.StatusForbidden},
		{"rebound host name", post{path: "/api/alarms/ack", body: ack, host: "evil.example:8080", header: map[string]string{"Sec-Fetch-Site": "same-origin"}}, http.StatusForbidden},
		{"form post", post{path: "/api/alarms/ack", body: "tag=LT-101", ctype: "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"text/plain", post{path: "/api/alarms/ack", body: ack, ctype: "text/plain"}, http.StatusUnsupportedMediaType},
		{"unknown field", post{path: "/api/alarms/ack", body: `{"tag":"LT-101","who":"boss"}`}, http.StatusBadRequest},
		{"no tag", post{path: "/api/alarms/ack", body: `{}`}, http.StatusBadRequest},
		{"control character in name", post{path: "/api/alarms/ack", body: `{"tag":"LT-101","by":"a\nb"}`}, http.StatusBadRequest},
		{"name too long", post{path: "/api/alarms/ack", body: `{"tag":"LT-101","by":"` + strings.Repeat("名", 65) + `"}`}, http.StatusBadRequest},
		{"bypass without reason", post{path: "/api/interlocks/bypass", body: `{"name":"IL-101","for":"30m"}`}, http.StatusBadRequest},
		{"bypass bad duration", post{path: "/api/interlocks/bypass", body: `{"name":"IL-101","for":"-5m","reason":"x"}`}, http.StatusBadRequest},
		{"bypass no duration", post{path: "/api/interlocks/bypass", body: `{"name":"IL-101","reason":"x"}`}, http.StatusBadRequest},
		{"reset without name", post{path: "/api/interlocks/reset", body: `{}`}, http.StatusBadRequest},
		{"shelve without level", post{path: "/api/alarms/shelve", body: `{"tag":"LT-101","for":"1h","reason":"x"}`}, http.StatusBadRequest},
		{"shelve without reason", post{path: "/api/alarms/shelve", body: `{"tag":"LT-101","level":"hh","for":"1h"}`}, http.StatusBadRequest},
		{"unshelve without level", post{path: "/api/alarms/unshelve", body: `{"tag":"LT-101"}`}, http.StatusBadRequest},
	} {
		code, rep := tc.p.do(t, s)
		if code != tc.want || rep.OK || rep.Error == "" {
			t.Errorf("%s: %d %+v, want %d with an error", tc.name, code, rep, tc.want)
		}
	}
	if len(ops.calls) != 0 {
		t.Errorf("refused requests reached the operator: %q", ops.calls)
	}
	req := httptest.NewRequest("GET", "/api/alarms/ack?tag=LT-101", nil)
	req.Host = "127.0.0.1:8080"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed || len(ops.calls) != 0 {
		t.Errorf("GET on an action: %d, calls %q", w.Code, ops.calls)
	}
}

// TestActionErrors: the Operator's refusals come back with a status that
// says what kind of refusal it was, and its message.
func TestActionErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("IL-101: %w (LT-101 >= 18.5)", interlock.ErrConditionHolds), http.StatusConflict},
		{fmt.Errorf("IL-9: %w", interlock.ErrUnknown), http.StatusNotFound},
		{fmt.Errorf("ack XX: %w", rules.ErrUnknownTag), http.StatusNotFound},
		{fmt.Errorf("ack LT-101: %w", rules.ErrNothingToAck), http.StatusConflict},
		{fmt.Errorf("IL-101: %w: 9h is longer than bypass_max 8h", interlock.ErrBypass), http.StatusConflict},
		{fmt.Errorf("LT-101 hh: %w: longer than 12h0m0s", rules.ErrShelve), http.StatusConflict},
		{fmt.Errorf("LT-101 roc: %w", rules.ErrUnknownLevel), http.StatusNotFound},
		{fmt.Errorf("%w: stopping", ErrUnavailable), http.StatusServiceUnavailable},
		{context.DeadlineExceeded, http.StatusServiceUnavailable},
		{fmt.Errorf("disk on fire"), http.StatusInternalServerError},
	} {
		s := newTestServer(t, config.Web{}, &fakeOperator{err: tc.err})
		code, rep := post{path: "/api/interlocks/reset", body: `{"name":"IL-101"}`}.do(t, s)
		if code != tc.want || rep.OK || rep.Error != tc.err.Error() {
			t.Errorf("%v: %d %+v, want %d", tc.err, code, rep, tc.want)
		}
	}
}

// TestReadOnlyWithoutOperator: no Operator, no buttons and no actions.
func TestReadOnlyWithoutOperator(t *testing.T) {
	s := newTestServer(t, config.Web{}, nil)
	code, _ := post{path: "/api/alarms/ack", body: `{"tag":"LT-101"}`}.do(t, s)
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("action without an operator: %d", code)
	}
	body := getBody(t, s, "/")
	if strings.Contains(body, `data-op=`) || strings.Contains(body, `id="op-name"`) {
		t.Error("read-only page shows operator controls")
	}
}

func getBody(t *testing.T, s *Server, path string) string {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Host = "127.0.0.1:8080"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
	}
	return w.Body.String()
}

// TestPageButtons: an Ack button for the unacknowledged alarm only, Reset
// for the tripped interlock, Bypass or End bypass by state, labelled in
// the page's language.
func TestPageButtons(t *testing.T) {
	s := newTestServer(t, config.Web{}, &fakeOperator{})
	zh := getBody(t, s, "/")
	for _, want := range []string{
		`data-op="ack" data-tag="LT-101" data-level="hh">确认</button>`,
		`data-op="reset" data-name="IL-101">复位</button>`,
		`data-op="bypass" data-name="IL-101">旁路</button>`,
		`data-op="unbypass" data-name="IL-102">解除旁路</button>`,
		`操作人 <b>local:</b><input id="op-name"`,
		`data-op="shelve" data-tag="LT-101" data-level="hh">搁置</button>`,
		`data-op="unshelve" data-tag="GT-201" data-level="h">取消搁置</button>`,
		`<small class="shelved">已搁置至 `,
	} {
		if !strings.Contains(zh, want) {
			t.Errorf("zh page lacks %s", want)
		}
	}
	for _, not := range []string{`data-op="ack" data-tag="GT-201"`, `data-op="reset" data-name="IL-102"`, `data-op="bypass" data-name="IL-102"`, `data-op="shelve" data-tag="GT-201"`, `data-op="unshelve" data-tag="LT-101"`} {
		if strings.Contains(zh, not) {
			t.Errorf("zh page has %s", not)
		}
	}
	en := getBody(t, s, "/?lang=en")
	for _, want := range []string{`data-level="hh">Acknowledge</button>`, `>Reset</button>`, `>End bypass</button>`, `Operator <b>local:</b>`} {
		if !strings.Contains(en, want) {
			t.Errorf("en page lacks %s", want)
		}
	}
}

// TestAPILists: GET /api/alarms and /api/interlocks, what the CLI lists.
func TestAPILists(t *testing.T) {
	s := newTestServer(t, config.Web{}, nil)
	var alarms []AlarmJSON
	if err := json.Unmarshal([]byte(getBody(t, s, "/api/alarms")), &alarms); err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 2 || alarms[0].Tag != "LT-101" || alarms[0].State != "active_unacked" || *alarms[0].Value != 18.9 ||
		alarms[1].AckedBy != "local:王工" || alarms[1].AckedAt == nil {
		t.Errorf("alarms %+v", alarms)
	}
	var ils []InterlockJSON
	if err := json.Unmarshal([]byte(getBody(t, s, "/api/interlocks")), &ils); err != nil {
		t.Fatal(err)
	}
	if len(ils) != 2 || !ils[0].Tripped || !ils[0].Condition || !ils[1].Bypassed || ils[1].BypassWho != "local:李工" {
		t.Errorf("interlocks %+v", ils)
	}
}
