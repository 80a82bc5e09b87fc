package uplink

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// recordingAcker stands in for the gateway's alarm engine: it records who
// acknowledged what, and refuses unknown tags as the engine does.
type recordingAcker struct {
	mu   sync.Mutex
	acks []string
}

func (a *recordingAcker) Ack(tag, level, who string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tag != "LT-101" {
		return errors.New("unknown tag")
	}
	a.acks = append(a.acks, tag+"/"+level+"/"+who)
	return nil
}

func (a *recordingAcker) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.acks...)
}

const testKey = "k3y-for-tests-0123456789abcdef-0123456789"

func commandConfig(t *testing.T, brokerURL string, allow ...string) *config.Config {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "command.key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(brokerURL)
	cfg.Uplink.Commands = &config.Commands{KeyFile: keyFile, Allow: allow, Window: config.Duration(time.Minute)}
	return cfg
}

var nonceN sync.Mutex
var nonceCount int

func body(command string, args string) CommandBody {
	nonceN.Lock()
	nonceCount++
	n := nonceCount
	nonceN.Unlock()
	b := CommandBody{V: 1, ID: fmt.Sprintf("c-%d", n), Gateway: "gw-01", Command: command,
		Time: time.Now().UTC().Format(time.RFC3339Nano), Nonce: fmt.Sprintf("nonce-%016d", n), By: "dispatcher-7"}
	if args != "" {
		b.Args = json.RawMessage(args)
	}
	return b
}

func sign(t testing.TB, key string, b CommandBody) []byte {
	t.Helper()
	p, err := SignCommand([]byte(key), b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommands sends valid and invalid commands through the broker: each
// gets a reply with the right result and code, each is recorded as an
// event (and published), and only valid ones have an effect.
func TestCommands(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	src.keep = true // so that a resend finds the records
	src.addData(250)
	acker := &recordingAcker{}
	var recMu sync.Mutex
	var recorded []model.Event
	opts := Options{
		Config: commandConfig(t, b.URL(), "status", "ack", "resend"),
		Commands: CommandOptions{
			Record: func(ev model.Event) error {
				recMu.Lock()
				recorded = append(recorded, ev)
				recMu.Unlock()
				src.addEvent(ev)
				return nil
			},
			Acker: acker,
		},
	}
	// Compressed, so that the test sees the resent data compressed as well.
	opts.Config.Uplink.Compression = config.CompressionZstd
	u, _ := runUplink(t, opts, src)
	eventually(t, 10*time.Second, "connected and data delivered", func() bool { return u.Connected() && col.nSeen(model.StreamData) == 250 })

	// The subscription is made right after the birth; give it a moment
	// by sending one command until the first reply comes.
	send := func(name string, payload []byte) ReplyMessage {
		t.Helper()
		col.mu.Lock()
		n := len(col.replies)
		col.mu.Unlock()
		if err := b.Publish("hazgate/gw-01/cmd/"+name, payload, false, 1); err != nil {
			t.Fatal(err)
		}
		var r ReplyMessage
		eventually(t, 5*time.Second, "reply to "+name, func() bool {
			col.mu.Lock()
			defer col.mu.Unlock()
			if len(col.replies) > n {
				r = col.replies[n]
				return true
			}
			return false
		})
		return r
	}

	statuses := func() int { col.mu.Lock(); defer col.mu.Unlock(); return len(col.statuses) }
	before := statuses()
	if r := send("status", sign(t, testKey, body("status", ""))); r.Result != "ok" || r.Code != "" {
		t.Errorf("status: %+v", r)
	}
	eventually(t, 5*time.Second, "status published on request", func() bool { return statuses() > before })

	ack := sign(t, testKey, body("ack", `{"tag":"LT-101","level":"hh"}`))
	if r := send("ack", ack); r.Result != "ok" || !strings.HasPrefix(r.ID, "c-") {
		t.Errorf("ack: %+v", r)
	}
	if got := acker.list(); len(got) != 1 || got[0] != "LT-101/hh/dispatcher-7" {
		t.Fatalf("acker saw %v", got)
	}

	old := body("ack", `{"tag":"LT-101","level":"hh"}`)
	old.Time = time.Now().Add(-5 * time.Minute).UTC().Format(time.RFC3339)
	forged := body("ack", `{"tag":"LT-101","level":"hh"}`)
	wrongGW := body("status", "")
	wrongGW.Gateway = "gw-02"
	tampered := sign(t, testKey, body("ack", `{"tag":"LT-101","level":"h"}`))
	tampered = []byte(strings.Replace(string(tampered), `\"level\":\"h\"`, `\"level\":\"hh\"`, 1))
	cases := []struct {
		name    string
		payload []byte
		result  string
		code    string
	}{
		{"ack", sign(t, "another-key-of-the-right-length-0123456789", forged), "refused", CodeBadSignature},
		{"ack", tampered, "refused", CodeBadSignature},
		{"ack", sign(t, testKey, old), "refused", CodeStale},
		{"ack", ack, "refused", CodeReplayedNonce},
		{"read", sign(t, testKey, body("read", `{"tag":"LT-101"}`)), "refused", CodeNotAllowed},
		{"status", sign(t, testKey, wrongGW), "refused", CodeWrongGateway},
		{"status", sign(t, testKey, body("ack", `{"tag":"LT-101","level":"hh"}`)), "refused", CodeBadFormat}, // topic and body disagree
		{"status", []byte(`not json`), "refused", CodeBadFormat},
		{"reboot", sign(t, testKey, body("reboot", "")), "refused", CodeUnknownCommand},
		{"ack", sign(t, testKey, body("ack", `{"tag":"XX-1","level":"hh"}`)), "failed", CodeFailed},
		{"resend", sign(t, testKey, body("resend", `{"stream":"data","first":10,"last":19}`)), "ok", ""},
		{"resend", sign(t, testKey, body("resend", `{"stream":"data","first":9000,"last":9001}`)), "failed", CodeNotFound},
		{"resend", sign(t, testKey, body("resend", `{"stream":"data","first":5}`)), "failed", CodeBadArgs},
	}
	for i, c := range cases {
		r := send(c.name, c.payload)
		if r.Result != c.result || r.Code != c.code || r.Message == "" {
			t.Errorf("case %d (%s): reply %+v, want %s/%s", i, c.name, r, c.result, c.code)
		}
	}
	if got := acker.list(); len(got) != 1 {
		t.Errorf("refused commands reached the acker: %v", got)
	}

	// The resend published samples 10..19 again, marked as replayed.
	eventually(t, 5*time.Second, "replayed data", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, d := range col.dataMsgs {
			if d.Replay && d.SeqFirst == 10 && d.SeqLast == 19 {
				return true
			}
		}
		return false
	})
	col.mu.Lock()
	for _, m := range col.raw {
		if strings.HasSuffix(m.Topic, "/data") && !bytes.HasPrefix(m.Payload, zstdMagic) {
			t.Errorf("a data payload is not zstd as configured: %.40q", m.Payload)
		}
	}
	col.mu.Unlock()

	// Every command was recorded as an event and reached the platform.
	want := 2 + len(cases)
	recMu.Lock()
	n := len(recorded)
	var refused int
	for _, ev := range recorded {
		if ev.Kind == KindCommandRefused {
			refused++
		}
	}
	recMu.Unlock()
	if n != want || refused != 9 {
		t.Errorf("%d command events (%d refused), want %d (9 refused)", n, refused, want)
	}
	eventually(t, 5*time.Second, "command events published", func() bool { return col.nSeen(model.StreamEvent) == want })
	col.mu.Lock()
	for _, e := range col.events {
		if strings.Contains(e.Message, testKey) {
			t.Errorf("event leaks the key: %s", e.Message)
		}
	}
	col.mu.Unlock()
}

func TestCommandsOffWithoutConfig(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	u, _ := runUplink(t, Options{Config: testConfig(b.URL())}, newMemSource())
	eventually(t, 10*time.Second, "connected", u.Connected)
	if err := b.Publish("hazgate/gw-01/cmd/status", sign(t, testKey, body("status", "")), false, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.replies) != 0 {
		t.Errorf("a gateway without uplink.commands answered: %+v", col.replies)
	}
}

func TestCommandKeyChecks(t *testing.T) {
	cfg := commandConfig(t, "tcp://127.0.0.1:1", "status")
	if _, err := New(Options{Config: cfg}, newMemSource()); err == nil || !strings.Contains(err.Error(), "Record") {
		t.Errorf("commands without a recorder: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("tooshort"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Uplink.Commands.KeyFile = short
	_, err := New(Options{Config: cfg, Commands: CommandOptions{Record: func(model.Event) error { return nil }}}, newMemSource())
	if err == nil || !strings.Contains(err.Error(), "at least 32") || strings.Contains(err.Error(), "tooshort") {
		t.Errorf("short key: %v", err)
	}
	// SignCommand is what the contract says: HMAC over the body text.
	p := sign(t, testKey, body("status", ""))
	var env CommandEnvelope
	if err := json.Unmarshal(p, &env); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte(env.Body))
	if env.HMAC != hex.EncodeToString(m.Sum(nil)) {
		t.Error("SignCommand's hmac is not HMAC-SHA256 over body")
	}
}

// TestRefusalFloodIsBounded: junk on the command topic is refused every
// time, but recorded as events only up to a rate, with a count of the rest.
func TestRefusalFloodIsBounded(t *testing.T) {
	var events []model.Event
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := &commander{key: []byte(testKey), gateway: "gw-01", window: time.Minute, nonces: map[string]time.Time{},
		now:  func() time.Time { return now },
		opts: CommandOptions{Record: func(ev model.Event) error { events = append(events, ev); return nil }}}
	for range 30 {
		v := c.authorize("status", []byte("junk"))
		if v.result != "refused" || v.code != CodeBadFormat {
			t.Fatalf("junk: %+v", v)
		}
		if err := c.record(v, "status"); err != nil {
			t.Fatal(err)
		}
	}
	if len(events) != refusalBurst {
		t.Fatalf("%d refusals recorded of 30 at once, want %d", len(events), refusalBurst)
	}
	now = now.Add(2 * refusalEvery)
	if err := c.record(c.authorize("status", []byte("junk")), "status"); err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1].Message
	if len(events) != refusalBurst+1 || !strings.Contains(last, "and 10 more refused commands") {
		t.Fatalf("%d events, last %q", len(events), last)
	}
}

// TestReplayAfterRestartRefused: nonces live in memory, so a restart
// forgets them; a command captured on the network and replayed right after
// a restart must still be refused, because it was issued before the new
// process started.
func TestReplayAfterRestartRefused(t *testing.T) {
	issued := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	newCommander := func(start time.Time, now *time.Time) *commander {
		return &commander{key: []byte(testKey), gateway: "gw-01", window: 2 * time.Minute, nonces: map[string]time.Time{},
			allow: []string{"status"}, started: start, now: func() time.Time { return *now },
			opts: CommandOptions{Record: func(model.Event) error { return nil }}}
	}
	b := body("status", "")
	b.Time = issued.Format(time.RFC3339Nano)
	captured := sign(t, testKey, b)

	now := issued.Add(time.Second)
	first := newCommander(issued.Add(-time.Hour), &now)
	if v := first.authorize("status", captured); v.result != "ok" {
		t.Fatalf("the original command: %+v", v)
	}
	if v := first.authorize("status", captured); v.code != CodeReplayedNonce {
		t.Fatalf("replay to the same process: %+v", v)
	}
	// The gateway restarts 20 s later; the replay comes 10 s after that,
	// well inside the 2 min window.
	now = issued.Add(30 * time.Second)
	second := newCommander(issued.Add(20*time.Second), &now)
	v := second.authorize("status", captured)
	if v.result != "refused" || v.code != CodeStale || !strings.Contains(v.message, "before this gateway process started") {
		t.Fatalf("replay after a restart: %+v", v)
	}
	// A fresh command after the restart goes through.
	fresh := body("status", "")
	fresh.Time = now.Format(time.RFC3339Nano)
	if v := second.authorize("status", sign(t, testKey, fresh)); v.result != "ok" {
		t.Fatalf("fresh command after the restart: %+v", v)
	}
}
