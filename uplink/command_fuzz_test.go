package uplink

import (
	"testing"
	"time"

	"hazgate/internal/model"
)

// FuzzCommand feeds arbitrary bytes to the command checks, as anyone who
// can publish on a command topic could. Nothing may panic, and nothing but
// a correctly signed, fresh, allowed command may be accepted: the fuzzer
// does not know the key, so every verdict must be a refusal, except for
// the signed seeds (which it may mutate into refusals).
func FuzzCommand(f *testing.F) {
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	signed := func(cmd, args string) []byte {
		b := body(cmd, args)
		b.Time = now.Format(time.RFC3339Nano)
		return sign(f, testKey, b)
	}
	f.Add("status", signed("status", ""))
	f.Add("ack", signed("ack", `{"tag":"LT-101","level":"hh"}`))
	f.Add("resend", signed("resend", `{"stream":"data","first":1,"last":9}`))
	f.Add("status", []byte(`{"body":"{}","hmac":"00"}`))
	f.Add("read", []byte(`not json`))
	f.Add("ack", []byte(`{"body":"\u0000","hmac":"zz","extra":1}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		c := &commander{key: []byte(testKey), gateway: "gw-01", window: 2 * time.Minute, nonces: map[string]time.Time{},
			allow: []string{"status", "ack", "resend", "read"}, now: func() time.Time { return now },
			opts: CommandOptions{Record: func(model.Event) error { return nil }}}
		v := c.authorize(name, payload)
		switch v.result {
		case "refused":
			if v.code == "" || v.message == "" {
				t.Fatalf("a refusal without code or message: %+v", v)
			}
		case "ok", "failed":
			// Only a payload carrying a valid signature gets here; then the
			// same bytes a second time must be a replay.
			if again := c.authorize(name, payload); again.code != CodeReplayedNonce {
				t.Fatalf("an accepted command accepted twice: %+v then %+v", v, again)
			}
		default:
			t.Fatalf("verdict %q", v.result)
		}
	})
}
