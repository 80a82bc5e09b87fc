package config

import (
	"strings"
	"testing"
)

func TestParseNodeID(t *testing.T) {
	good := []struct {
		in   string
		want NodeID
		text string // String(), when it differs from in
	}{
		{"ns=2;s=Reactor.TT-301", NodeID{Namespace: 2, Kind: 's', Text: "Reactor.TT-301"}, ""},
		{"ns=3;i=1001", NodeID{Namespace: 3, Kind: 'i', Numeric: 1001}, ""},
		{"i=2259", NodeID{Kind: 'i', Numeric: 2259}, ""},
		{"ns=0;i=2259", NodeID{Kind: 'i', Numeric: 2259}, "i=2259"},
		{"ns=65535;i=4294967295", NodeID{Namespace: 65535, Kind: 'i', Numeric: 4294967295}, ""},
		{"ns=1;s=反应釜.温度;a=b", NodeID{Namespace: 1, Kind: 's', Text: "反应釜.温度;a=b"}, ""}, // everything after s= is the string
		{"ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", NodeID{Namespace: 1, Kind: 'g', Text: "72962B91-FA75-4AE6-8D28-B404DC7DAF63"}, "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63"},
		{"ns=1;b=M/RbKBsRVkePCePcx24oRA==", NodeID{Namespace: 1, Kind: 'b', Text: "M/RbKBsRVkePCePcx24oRA=="}, ""},
	}
	for _, c := range good {
		got, err := ParseNodeID(c.in)
		if err != nil {
			t.Errorf("ParseNodeID(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseNodeID(%q) = %+v, want %+v", c.in, got, c.want)
		}
		text := c.text
		if text == "" {
			text = c.in
		}
		if got.String() != text {
			t.Errorf("ParseNodeID(%q).String() = %q, want %q", c.in, got.String(), text)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "no identifier"},
		{"ns=2", "no ';' after the namespace"},
		{"ns=65536;i=1", "namespace \"65536\" is not 0..65535"},
		{"ns=-1;i=1", "is not 0..65535"},
		{"ns=+1;i=1", "is not 0..65535"},
		{"ns=;i=1", "is not 0..65535"},
		{"ns=2;i=", "numeric identifier \"\""},
		{"ns=2;i=4294967296", "is not 0..4294967295"},
		{"ns=2;i=12a", "is not 0..4294967295"},
		{"ns=2;s=", "empty string identifier"},
		{"ns=2;s=a\nb", "control characters"},
		{"ns=2;x=1", "identifier type \"x\""},
		{"ns=2;g=1234", "is not 8-4-4-4-12"},
		{"ns=2;b=***", "is not base64"},
		{"nsu=urn:x;s=a", "namespace URI"},
		{"Reactor.TT-301", "no identifier"},
		{"s=" + strings.Repeat("x", 4097), "too long"},
	}
	for _, c := range bad {
		_, err := ParseNodeID(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseNodeID(%.40q) = %v, want an error containing %q", c.in, err, c.msg)
		}
	}
}

// FuzzParseNodeID: the parser never panics, and what it accepts writes
// out to a text that parses back to the same id.
func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"ns=2;s=Reactor.TT-301", "i=2259", "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", "ns=1;b=AAEC", "ns=70000;i=1", "ns=1;s=\xff", "ns=01;i=007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			return
		}
		again, err := ParseNodeID(id.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose text %q does not parse: %v", s, id, id.String(), err)
		}
		if again != id {
			t.Fatalf("%q -> %+v -> %q -> %+v", s, id, id.String(), again)
		}
	})
}

const opcuaMinimal = `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: dcs
    protocol: opcua
    address: opc.tcp://10.0.0.7:4840/UA/Server
    tags:
      - name: TT-301
        kind: temperature
        node: ns=2;s=R-301.TT-301
        range: {min: 0, max: 200}
      - name: XS-301
        kind: digital
        node: ns=2;i=1001
        opcua: {subscribe: true, deadband_absolute: 0.5}
        alarms: {l: 0}
`

func TestOPCUADefaults(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(opcuaMinimal))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Devices[0]
	o := d.OPCUA
	if o == nil || o.SecurityPolicy != OPCUAPolicyNone || o.SecurityMode != OPCUAModeNone || o.MaxNodesPerRead != DefaultOPCUAMaxNodesPerRead ||
		o.SessionTimeout != DefaultOPCUASessionTimeout || o.PublishInterval != d.Interval || o.ApplicationURI != "urn:hazgate:gw-1" || o.CertDir != "data/opcua" {
		t.Errorf("device opcua defaults %+v", o)
	}
	if d.Tags[0].OPCUA != nil {
		t.Errorf("a polled tag got an opcua block: %+v", d.Tags[0].OPCUA)
	}
	if to := d.Tags[1].OPCUA; to.SamplingInterval != d.Interval || to.QueueSize != 1 || !to.Subscribe {
		t.Errorf("tag opcua defaults %+v", to)
	}
}

func TestOPCUAProblems(t *testing.T) {
	head := `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: dcs
    protocol: opcua
`
	cases := []struct {
		name, body string
		want       []string
	}{
		{"endpoint not opc.tcp", `    address: 10.0.0.7:4840
    tags:
      - {name: T1, kind: count, node: i=1}
`, []string{`plant.yaml:9:14: devices[0].address: "10.0.0.7:4840" is not an opc.tcp:// endpoint URL`}},
		{"no port", `    address: opc.tcp://dcs-01/UA
    tags:
      - {name: T1, kind: count, node: i=1}
`, []string{`plant.yaml:9:14: devices[0].address: "opc.tcp://dcs-01/UA" has no port (OPC UA servers usually listen on 4840: opc.tcp://dcs-01:4840/UA)`}},
		{"modbus fields and bad node", `    address: opc.tcp://10.0.0.7:4840
    tags:
      - {name: T1, kind: count, node: "ns=2;q=1", area: holding, address: 3}
`, []string{
			`plant.yaml:11:39: devices[0].tags[0].node: "ns=2;q=1": identifier type "q" is not i, s, g or b`,
			`plant.yaml:11:57: devices[0].tags[0].area: is a Modbus field`,
			`plant.yaml:11:75: devices[0].tags[0].address: is a Modbus field`,
		}},
		{"missing node", `    address: opc.tcp://10.0.0.7:4840
    tags:
      - {name: T1, kind: count}
`, []string{`devices[0].tags[0].node: missing (the node id, write it like ns=2;s=Reactor.TT-301`}},
		{"secure without trust, user over None", `    address: opc.tcp://10.0.0.7:4840
    opcua:
      security_policy: Basic256Sha256
      security_mode: Sign
      cert_file: gw.der
    tags:
      - {name: T1, kind: count, node: i=1}
  - name: dcs2
    protocol: opcua
    address: opc.tcp://10.0.0.8:4840
    opcua: {username: op, password_env: OPC_PW}
    tags:
      - {name: T2, kind: count, node: i=1}
`, []string{
			`devices[0].opcua.trust_dir: missing (a folder of trusted server certificates`,
			`devices[0].opcua.cert_file: cert_file and key_file go together`,
			`devices[1].opcua.username: user name login over security_policy None would expose the password`,
		}},
		{"subscription settings on a polled tag", `    address: opc.tcp://10.0.0.7:4840
    tags:
      - name: T1
        kind: count
        node: i=1
        opcua: {queue_size: 5, deadband_percent: 150}
`, []string{
			`devices[0].tags[0].opcua.queue_size: applies to subscribed tags only`,
			`devices[0].tags[0].opcua.deadband_percent: applies to subscribed tags only`,
			`devices[0].tags[0].opcua.deadband_percent: 150 is out of range`,
		}},
		{"user certificate half or with a user name", `    address: opc.tcp://10.0.0.7:4840
    opcua: {security_policy: Basic256Sha256, trust_dir: pki, user_cert_file: u.der}
    tags:
      - {name: T1, kind: count, node: i=1}
  - name: dcs2
    protocol: opcua
    address: opc.tcp://10.0.0.8:4840
    opcua: {security_policy: Basic256Sha256, trust_dir: pki, user_cert_file: u.der, user_key_file: u.pem, username: op, password_env: PW}
    tags:
      - {name: T2, kind: count, node: i=1}
`, []string{
			`devices[0].opcua.user_cert_file: user_cert_file and user_key_file go together`,
			`devices[1].opcua.user_cert_file: set together with username`,
		}},
		{"policy typo", `    address: opc.tcp://10.0.0.7:4840
    opcua: {security_policy: Basic256, trust_dir: pki}
    tags:
      - {name: T1, kind: count, node: i=1}
`, []string{`devices[0].opcua.security_policy: "Basic256" is not a security policy`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(problems(t, head+c.body), "\n")
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems:\n%s\nwant one containing %q", got, w)
				}
			}
		})
	}
}

// TestModbusUnchangedByOPCUA: a Modbus tag without area and address is
// still reported as before.
func TestModbusUnchangedByOPCUA(t *testing.T) {
	got := strings.Join(problems(t, `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: T1, kind: count, node: i=1}
`), "\n")
	for _, w := range []string{"devices[0].tags[0].area: missing", "devices[0].tags[0].address: missing"} {
		if !strings.Contains(got, w) {
			t.Errorf("problems:\n%s\nwant %q", got, w)
		}
	}
}
