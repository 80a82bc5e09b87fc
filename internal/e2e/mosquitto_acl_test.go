package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/config"
	"hazgate/internal/interop"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/watch"
	"hazgate/uplink"
)

// gatewayACL lets a gateway publish only its own topics and read only its
// own command topic; the dispatch center reads everything and commands.
const gatewayACL = `user demo-gw-01
topic write hazgate/demo-gw-01/data
topic write hazgate/demo-gw-01/event
topic write hazgate/demo-gw-01/status
topic write hazgate/demo-gw-01/reply
topic read hazgate/demo-gw-01/cmd/+

user dispatch
topic read hazgate/#
topic write hazgate/+/cmd/#
`

// TestMosquittoMutualTLSAndACL: Mosquitto requires a client certificate,
// a password and enforces an ACL. Without its certificate the gateway
// does not get in; with it, it publishes, answers a signed command, and a
// client with the gateway's credentials cannot publish as another gateway.
func TestMosquittoMutualTLSAndACL(t *testing.T) {
	passwd := interop.Require(t, "mosquitto_passwd")[0]
	dir := t.TempDir()
	p := makePKI(t, dir)
	gwCert := makeClientCert(t, dir, p.ca, p.caKey, "demo-gw-01")
	dispatchCert := makeClientCert(t, dir, p.ca, p.caKey, "dispatch")
	pwFile := filepath.Join(dir, "mosquitto.passwd")
	for i, up := range [][2]string{{"demo-gw-01", "gw-pw-0123"}, {"dispatch", "dispatch-pw"}} {
		args := []string{"-b", pwFile, up[0], up[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	aclFile := testkit.WriteFile(t, dir, "mosquitto.acl", []byte(gatewayACL))
	mq := testkit.StartMosquitto(t, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		pwFile, aclFile, p.caFile, p.server[0], p.server[1]))
	url := "ssl://" + mq.Addr

	w := startWatcher(t, watch.Options{Broker: url, Username: "dispatch", Password: "dispatch-pw",
		CAFile: p.caFile, CertFile: dispatchCert[0], KeyFile: dispatchCert[1]})
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	const key = "0123456789abcdef0123456789abcdef-acl"
	keyFile := testkit.WriteFile(t, dir, "command.key", []byte(key))
	gwPw := testkit.WriteFile(t, dir, "gw.password", []byte("gw-pw-0123\n"))
	gwConfig := func(data string, withCert bool) *config.Config {
		s := string(testkit.DemoConfigYAML(t, plant.Addr(), url, filepath.Join(dir, data)))
		const anchor = "  topic_prefix: hazgate\n"
		if !strings.Contains(s, anchor) {
			t.Fatalf("configs/demo.yaml no longer contains %q; update this test", anchor)
		}
		extra := fmt.Sprintf("  username: demo-gw-01\n  password_file: %q\n  tls:\n    ca_file: %q\n", gwPw, p.caFile)
		if withCert {
			extra += fmt.Sprintf("    cert_file: %q\n    key_file: %q\n", gwCert[0], gwCert[1])
		}
		extra += fmt.Sprintf("  commands:\n    key_file: %q\n    allow: [status]\n", keyFile)
		return loadConfig(t, []byte(strings.Replace(s, anchor, anchor+extra, 1)))
	}

	// No client certificate: the TLS handshake fails, nothing is sent,
	// everything stays buffered.
	bad, stopBad := runGateway(t, gwConfig("data-nocert", false))
	time.Sleep(3 * time.Second)
	if st := bad.Status(); st.Connected || st.Buffer.Data.Records == 0 {
		t.Errorf("without a client certificate: connected=%v, %d data records buffered", st.Connected, st.Buffer.Data.Records)
	}
	stopBad()
	if c := w.c.Counts(); c.Samples != 0 {
		t.Fatalf("%d samples arrived from a gateway without its certificate", c.Samples)
	}

	_, stop := runGateway(t, gwConfig("data-good", true))
	w.waitOutput(t, 15*time.Second, "STATUS   demo-gw-01 online")
	waitFor(t, 15*time.Second, "data under the ACL", func() bool { return w.c.Counts().Samples >= 50 })

	// The dispatch center commands; the gateway may read its command
	// topic and publish its reply.
	tlsOpts := func(user, pw string, cert [2]string, id string) *mqtt.ClientOptions {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false).SetUsername(user).SetPassword(pw)
		cfg, err := tlsClientConfig(p.caFile, cert)
		if err != nil {
			t.Fatal(err)
		}
		return o.SetTLSConfig(cfg)
	}
	dispatch := mqtt.NewClient(tlsOpts("dispatch", "dispatch-pw", dispatchCert, "dispatch-cmd"))
	if tok := dispatch.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("dispatch connect: %v", tok.Error())
	}
	defer dispatch.Disconnect(100)
	cmd, err := uplink.SignCommand([]byte(key), uplink.CommandBody{V: 1, ID: "acl-1", Gateway: "demo-gw-01", Command: "status",
		Time: time.Now().UTC().Format(time.RFC3339), Nonce: "acl-nonce-0000000001", By: "dispatcher"})
	if err != nil {
		t.Fatal(err)
	}
	if tok := dispatch.Publish("hazgate/demo-gw-01/cmd/status", 1, false, cmd); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish command: %v", tok.Error())
	}
	w.waitOutput(t, 10*time.Second, `"id":"acl-1"`)

	// The gateway's credentials do not let it speak for another gateway.
	impostor := mqtt.NewClient(tlsOpts("demo-gw-01", "gw-pw-0123", gwCert, "impostor"))
	if tok := impostor.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("impostor connect: %v", tok.Error())
	}
	fake, _ := json.Marshal(map[string]any{"v": 1, "gateway": "gw-other", "enterprise": "E", "state": "online"})
	tok := impostor.Publish("hazgate/gw-other/status", 1, false, fake)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("denied publish: no PUBACK within 5 s")
	}
	// MQTT 3.1.1 has no negative acknowledgement: the broker acknowledges
	// the denied publish like any other and drops it. docs/uplink.md §1
	// warns integrators of exactly this; if a broker version starts to
	// refuse instead, that warning needs updating.
	if err := tok.Error(); err != nil {
		t.Errorf("denied publish returned %v; docs/uplink.md §1 says it is acknowledged and silently dropped", err)
	}
	impostor.Disconnect(100)
	before := w.c.Counts().Samples
	waitFor(t, 10*time.Second, "more data after the impostor", func() bool { return w.c.Counts().Samples > before+20 })
	if strings.Contains(w.out.String(), "gw-other") {
		t.Error("the broker let the gateway's credentials publish under another gateway's prefix")
	}

	stop()
	w.waitOutput(t, 10*time.Second, "offline (shutdown)")
	w.finish(t)
}
