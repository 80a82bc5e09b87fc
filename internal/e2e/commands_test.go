package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/watch"
	"hazgate/uplink"
)

// TestMosquittoCommands sends signed and forged commands to the real
// gateway through Mosquitto: the valid ones are carried out, the forged,
// stale and replayed ones are refused with a reason, and every one is
// recorded as an event the platform receives.
func TestMosquittoCommands(t *testing.T) {
	dir := t.TempDir()
	mq := testkit.StartMosquitto(t, dir, "allow_anonymous true")
	url := "tcp://" + mq.Addr
	w := startWatcher(t, watch.Options{Broker: url, Gateway: "demo-gw-01"})
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	const key = "0123456789abcdef0123456789abcdef-e2e"
	keyFile := testkit.WriteFile(t, dir, "command.key", []byte(key+"\n"))
	s := string(testkit.DemoConfigYAML(t, plant.Addr(), url, filepath.Join(dir, "data")))
	const anchor = "  topic_prefix: hazgate\n"
	if !strings.Contains(s, anchor) {
		t.Fatalf("configs/demo.yaml no longer contains %q; update this test", anchor)
	}
	s = strings.Replace(s, anchor, anchor+fmt.Sprintf("  commands:\n    key_file: %q\n    allow: [status, ack, read]\n    window: 1m\n", keyFile), 1)
	_, stop := runGateway(t, loadConfig(t, []byte(s)))
	w.waitOutput(t, 15*time.Second, "STATUS   demo-gw-01 online")

	// The dispatch center's client.
	var mu sync.Mutex
	var replies []uplink.ReplyMessage
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("dispatch-test").SetAutoReconnect(false)
	cl := mqtt.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Subscribe("hazgate/demo-gw-01/reply", 1, func(_ mqtt.Client, m mqtt.Message) {
		var r uplink.ReplyMessage
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			t.Errorf("reply: %v", err)
		}
		mu.Lock()
		replies = append(replies, r)
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	n := 0
	body := func(command, args string) uplink.CommandBody {
		n++
		b := uplink.CommandBody{V: 1, ID: fmt.Sprintf("e2e-%d", n), Gateway: "demo-gw-01", Command: command,
			Time: time.Now().UTC().Format(time.RFC3339Nano), Nonce: fmt.Sprintf("e2e-nonce-%08d", n), By: "dispatcher-1"}
		if args != "" {
			b.Args = json.RawMessage(args)
		}
		return b
	}
	sign := func(k string, b uplink.CommandBody) []byte {
		p, err := uplink.SignCommand([]byte(k), b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	send := func(name string, payload []byte) uplink.ReplyMessage {
		t.Helper()
		mu.Lock()
		before := len(replies)
		mu.Unlock()
		if tok := cl.Publish("hazgate/demo-gw-01/cmd/"+name, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		var r uplink.ReplyMessage
		waitFor(t, 10*time.Second, "reply to "+name, func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(replies) > before {
				r = replies[before]
				return true
			}
			return false
		})
		return r
	}

	if r := send("status", sign(key, body("status", ""))); r.Result != "ok" {
		t.Errorf("status: %+v", r)
	}
	// An ack reaches the alarm engine: a tag it does not know is its error.
	ack := sign(key, body("ack", `{"tag":"NO-SUCH-TAG","level":"hh"}`))
	if r := send("ack", ack); r.Result != "failed" || !strings.Contains(r.Message, "NO-SUCH-TAG") {
		t.Errorf("ack of an unknown tag: %+v", r)
	}
	// A read answers with the newest durable sample of the tag.
	w.waitOutput(t, 10*time.Second, "DATA ")
	if r := send("read", sign(key, body("read", `{"tag":"LT-101"}`))); r.Result != "ok" || r.Data["tag"] != "LT-101" || r.Data["quality"] == nil || r.Data["time"] == nil {
		t.Errorf("read: %+v", r)
	}
	// A valid signed ack is applied: the alarm engine acknowledges the
	// gas alarm on behalf of the dispatcher and reports it.
	if err := plant.Set(sim.GT201, 30); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the GT-201 first alarm", func() bool {
		return strings.Contains(w.out.String(), "alarm_raised: GT-201")
	})
	if r := send("ack", sign(key, body("ack", `{"tag":"GT-201","level":"h"}`))); r.Result != "ok" {
		t.Errorf("ack of an active alarm: %+v", r)
	}
	w.waitOutput(t, 10*time.Second, "alarm_acknowledged")
	stale := body("ack", `{"tag":"LT-101","level":"hh"}`)
	stale.Time = time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		name    string
		payload []byte
		code    string
	}{
		{"ack", sign("a-different-key-of-enough-length-000", body("ack", `{"tag":"LT-101","level":"hh"}`)), uplink.CodeBadSignature},
		{"ack", sign(key, stale), uplink.CodeStale},
		{"ack", ack, uplink.CodeReplayedNonce},
		{"resend", sign(key, body("resend", `{"stream":"data","first":1,"last":2}`)), uplink.CodeNotAllowed},
	} {
		if r := send(c.name, c.payload); r.Result != "refused" || r.Code != c.code {
			t.Errorf("%s: reply %+v, want refused/%s", c.code, r, c.code)
		}
	}
	w.waitOutput(t, 10*time.Second, "command_refused")
	waitFor(t, 10*time.Second, "four refusals reported as events", func() bool {
		return strings.Count(w.out.String(), "command_refused") >= 4
	})
	stop()
	w.waitOutput(t, 10*time.Second, "offline (shutdown)")
	out := w.out.String()
	if strings.Count(out, "command_accepted") < 1 || strings.Count(out, "command_failed") < 1 {
		t.Errorf("accepted and failed commands were not reported:\n%s", out)
	}
	w.finish(t)
}
