package schema

import (
	"strings"
	"testing"
)

// The examples of docs/uplink.md must validate, and each broken variant
// must not: a schema that accepts everything would pass the first half.
func TestSchemasAcceptGoodAndRefuseBad(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	const data = `{"v":1,"gateway":"gw-01","enterprise":"E3201001","stream":"data","seq_first":101,"seq_last":102,"sent_at":"2026-11-23T10:00:00.123Z","samples":[` +
		`{"seq":101,"tag":"LT-101","kind":"level","unit":"m","value":12.34,"quality":"good","time":"2026-11-23T09:59:59.871Z"},` +
		`{"seq":102,"tag":"PT-201","quality":"bad","reason":"timeout","time":"2026-11-23T09:59:59.871Z"}]}`
	const event = `{"v":1,"gateway":"gw-01","enterprise":"E3201001","stream":"event","seq":12,"kind":"alarm_raised","time":"2026-11-23T09:59:59.871Z","device":"plc-1","tag":"LT-101","level":"hh","value":18.7,"limit":18.5,"unit":"m","message":"LT-101 high-high"}`
	const status = `{"v":1,"gateway":"gw-01","enterprise":"E3201001","state":"offline","reason":"connection lost","time":"2026-11-23T10:00:00.123Z","version":"v1.2.0","started_at":"2026-11-23T08:00:00.000Z","uptime_s":7200,"broker":"tcp://127.0.0.1:1883"}`
	const reply = `{"v":1,"gateway":"gw-01","enterprise":"E","id":"c1","command":"ack","time":"2026-11-23T10:00:00.123Z","result":"refused","code":"bad_signature","message":"signature does not match"}`
	cases := []struct {
		kind, payload string
		ok            bool
	}{
		{Data, data, true},
		{Data, strings.Replace(data, `"value":12.34,`, ``, 1), false},                // good sample without value
		{Data, strings.Replace(data, `"reason":"timeout",`, `"value":1,`, 1), false}, // bad sample with a value
		{Data, strings.Replace(data, `"reason":"timeout",`, ``, 1), true},            // reason is optional
		{Data, strings.Replace(data, `.123Z`, `Z`, 1), false},                        // time format
		{Data, strings.Replace(data, `"v":1`, `"v":2`, 1), false},
		{Data, strings.Replace(data, `"seq_first":101`, `"seq_first":101,"extra":1`, 1), false},
		{Event, event, true},
		{Event, strings.Replace(event, `"level":"hh",`, ``, 1), false}, // alarm without level
		{Event, strings.Replace(event, `"alarm_raised"`, `"some_new_kind"`, 1), true},
		{Event, strings.Replace(event, `"message":"LT-101 high-high"`, `"msg":""`, 1), false},
		{Event, `{"v":1,"gateway":"gw-01","enterprise":"E","stream":"event","seq":13,"kind":"config_changed","time":"2026-11-23T09:59:59.871Z","message":"config reloaded","old_config_hash":"3f2a9c0d11e4b7a2","config_hash":"0123456789abcdef"}`, true},
		{Event, `{"v":1,"gateway":"gw-01","enterprise":"E","stream":"event","seq":13,"kind":"config_changed","time":"2026-11-23T09:59:59.871Z","message":"config reloaded","config_hash":"0123456789abcdef"}`, false}, // old hash missing
		{Status, status, true},
		{Status, strings.Replace(status, `"reason":"connection lost",`, ``, 1), false},
		{Reply, reply, true},
		{Reply, strings.Replace(reply, `"code":"bad_signature",`, ``, 1), false},
		{Command, `{"body":"{}","hmac":"` + strings.Repeat("ab", 32) + `"}`, true},
		{Command, `{"body":"{}","hmac":"xyz"}`, false},
		{Body, `{"v":1,"id":"c1","gateway":"gw-01","command":"ack","time":"2026-11-23T10:00:00Z","nonce":"0123456789abcdef","by":"op","args":{"tag":"LT-101","level":"hh"}}`, true},
		{Body, `{"v":1,"id":"c1","gateway":"gw-01","command":"ack","time":"2026-11-23T10:00:00Z","nonce":"0123456789abcdef","args":{"tag":"LT-101","level":"hh"}}`, false},
		{Body, `{"v":1,"id":"c1","gateway":"gw-01","command":"resend","time":"2026-11-23T10:00:00Z","nonce":"0123456789abcdef","args":{"stream":"data","first":1}}`, false},
		{Data, `{"v":1} {}`, false},
	}
	for i, c := range cases {
		err := s.Validate(c.kind, []byte(c.payload))
		if (err == nil) != c.ok {
			t.Errorf("case %d (%s): valid=%v, want %v: %v", i, c.kind, err == nil, c.ok, err)
		}
	}
}

func TestKindOfTopic(t *testing.T) {
	for topic, want := range map[string]string{
		"hazgate/gw-01/data":    Data,
		"hazgate/gw-01/event":   Event,
		"hazgate/gw-01/status":  Status,
		"hazgate/gw-01/reply":   Reply,
		"hazgate/gw-01/cmd/ack": Command,
		"hazgate/gw-01/other":   "",
		"x/cmd":                 "",
	} {
		if got := KindOfTopic(topic); got != want {
			t.Errorf("KindOfTopic(%q) = %q, want %q", topic, got, want)
		}
	}
}
