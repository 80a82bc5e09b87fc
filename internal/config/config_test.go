package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// problems parses src as plant.yaml and returns the printed problems, or
// fails the test if the file was accepted or the error is not *Errors.
func problems(t *testing.T, src string) []string {
	t.Helper()
	cfg, err := Parse("plant.yaml", []byte(src))
	if err == nil {
		t.Fatalf("accepted an invalid file: %+v", cfg)
	}
	if cfg != nil {
		t.Errorf("returned a config along with the error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	if got := err.Error(); got != strings.Join(lines(errs), "\n") {
		t.Errorf("Error() does not join the problems:\n%s", got)
	}
	return lines(errs)
}

func lines(errs *Errors) []string {
	out := make([]string, len(errs.List))
	for i, p := range errs.List {
		out[i] = p.String()
	}
	return out
}

// minimal is the smallest valid file; the broken files below are written
// out in full so that the line numbers in the expectations can be checked
// by eye.
const minimal = `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`

func TestBrokenFiles(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown field with a suggestion",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    intervall: 2s
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{"plant.yaml:10:5: devices[0].intervall: unknown field (did you mean interval?)"},
		},
		{
			name: "unknown field without a close match lists the valid ones",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
  colour: blue
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{"plant.yaml:4:3: gateway.colour: unknown field (valid fields: id, enterprise_code, data_dir)"},
		},
		{
			name: "text where a number belongs",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
  inflight: many
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: "12"
        range: {min: 0, max: 20.5x}
`,
			want: []string{
				`plant.yaml:6:13: uplink.inflight: "many" is not a whole number`,
				`plant.yaml:15:18: devices[0].tags[0].address: "12" is not a whole number; remove the quotes`,
				`plant.yaml:16:30: devices[0].tags[0].range.max: "20.5x" is not a number`,
			},
		},
		{
			name: "fraction where a whole number belongs",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 1.5
        range: {min: 0, max: 20}
`,
			want: []string{"plant.yaml:14:18: devices[0].tags[0].address: 1.5 is not a whole number"},
		},
		{
			name: "bad durations",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
  keepalive: 30
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    interval: abc
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{
				"plant.yaml:6:14: uplink.keepalive: 30 has no unit (write it with one: 30s, 30ms or 30m)",
				`plant.yaml:11:15: devices[0].interval: "abc" is not a duration (like 500ms, 2s, 1m)`,
			},
		},
		{
			name: "missing address is reported at the tag",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        range: {min: 0, max: 20}
`,
			want: []string{"plant.yaml:11:9: devices[0].tags[0].address: missing (the 0-based register or coil address, 0..65535)"},
		},
		{
			name: "hh below h",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
        alarms:
          h: 17
          hh: 15
`,
			want: []string{"plant.yaml:18:15: devices[0].tags[0].alarms.hh: hh 15 is below h 17 (hh must be >= h)"},
		},
		{
			name: "alarm levels crossing in the middle, ll above l, deadband too wide",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
        alarms: {ll: 3, l: 2, h: 10, hh: 12, deadband: 8}
      - name: LT-2
        kind: level
        area: holding
        address: 1
        range: {min: 0, max: 20}
        alarms: {l: 10, h: 10, on_delay: -1s}
`,
			want: []string{
				"plant.yaml:16:22: devices[0].tags[0].alarms.ll: ll 3 is above l 2 (ll must be <= l)",
				"plant.yaml:16:56: devices[0].tags[0].alarms.deadband: 8 is not smaller than the gap between l 2 and h 10 (8)",
				"plant.yaml:22:28: devices[0].tags[1].alarms.h: h 10 is not above l 10 (h must be > l)",
				"plant.yaml:22:42: devices[0].tags[1].alarms.on_delay: -1s is negative (0 or more)",
			},
		},
		{
			name: "duplicate tag name across devices names both lines",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
  - name: plc2
    protocol: modbus-tcp
    address: 127.0.0.1:503
    tags:
      - name: LT-1
        kind: digital
        area: coil
        address: 0
`,
			want: []string{`plant.yaml:20:15: devices[1].tags[0].name: "LT-1" is already the name of devices[0].tags[0] at line 11 (tag names must be unique in the gateway)`},
		},
		{
			name: "duplicate device name",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: count, area: input, address: 0}
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:503
    tags:
      - {name: B, kind: count, area: input, address: 0}
`,
			want: []string{`plant.yaml:12:11: devices[1].name: "plc" is already the name of devices[0] at line 7 (device names must be unique)`},
		},
		{
			name: "unknown protocol and an address without port",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: profibus
    address: 192.168.1.10
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{
				`plant.yaml:8:15: devices[0].protocol: "profibus" is not supported (supported: modbus-tcp, modbus-rtu, modbus-rtu-tcp, opcua, gpio)`,
				`plant.yaml:9:14: devices[0].address: "192.168.1.10" is not host:port (like 192.168.1.10:502)`,
			},
		},
		{
			name: "bad byte order, and word swap on one register",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        type: float32
        order: ABDC
        range: {min: 0, max: 20}
      - name: C-1
        kind: count
        area: input
        address: 5
        order: CDAB
`,
			want: []string{
				`plant.yaml:16:16: devices[0].tags[0].order: "ABDC" is not a byte order (one of ABCD, BADC, CDAB, DCBA)`,
				"plant.yaml:22:16: devices[0].tags[1].order: CDAB swaps registers, but uint16 is one register (use ABCD or BADC)",
			},
		},
		{
			name: "bad broker URLs",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers:
    - 10.0.0.5:1883
    - http://10.0.0.5:1883
    - ssl://platform.example.com
    - tcp://user:secret@10.0.0.5:1883
    - tcp://10.0.0.5:99999
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{
				`plant.yaml:6:7: uplink.brokers[0]: "10.0.0.5:1883" has no scheme (like ssl://platform.example.com:8883 or tcp://10.0.0.5:1883)`,
				`plant.yaml:7:7: uplink.brokers[1]: scheme "http" is not supported (use tcp, mqtt, ssl, tls, ws or wss)`,
				`plant.yaml:8:7: uplink.brokers[2]: "ssl://platform.example.com" has no port (add one, e.g. ssl://platform.example.com:8883)`,
				"plant.yaml:9:7: uplink.brokers[3]: a broker URL must not carry credentials (put the user in uplink.username and the password in uplink.password_file)",
				`plant.yaml:10:7: uplink.brokers[4]: port "99999" is not 1..65535`,
			},
		},
		{
			name: "timeout not shorter than interval",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    interval: 500ms
    timeout: 500ms
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
`,
			want: []string{"plant.yaml:11:14: devices[0].timeout: 500ms is not shorter than interval 500ms (timeout must be < interval, so a silent device cannot delay the next poll)"},
		},
		{
			name: "YAML syntax error names its line",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883
devices:
  - name: plc
`,
			want: []string{"plant.yaml:5:1: YAML syntax error: did not find expected ',' or ']'"},
		},
		{
			name: "a tab in the indentation",
			src:  "gateway:\n  id: gw-1\n\tenterprise_code: E1\n",
			want: []string{"plant.yaml:3:1: YAML syntax error: found a tab character that violates indentation (YAML indents with spaces only, never tabs)"},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{"plant.yaml:1:1: file is empty (expected the sections gateway, uplink and devices)"},
		},
		{
			name: "only comments",
			src:  "# nothing yet\n\n",
			want: []string{"plant.yaml:1:1: file is empty (expected the sections gateway, uplink and devices)"},
		},
		{
			name: "two documents",
			src:  minimal + "---\ngateway: {id: other}\n",
			want: []string{"plant.yaml:16:1: a second YAML document starts here (a config is one document; remove the ---)"},
		},
		{
			name: "a list where a mapping belongs, and a mapping where a list belongs",
			src: `gateway:
  - id: gw-1
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  name: plc
`,
			want: []string{
				"plant.yaml:2:3: gateway: expected a mapping with fields id, enterprise_code, data_dir, got a list; remove the '- ' in front of the fields",
				"plant.yaml:6:3: devices: expected a list, got a mapping; start each entry with '- '",
			},
		},
		{
			name: "a key written twice",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
  id: gw-2
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: count, area: input, address: 0}
`,
			want: []string{"plant.yaml:4:3: gateway.id: set twice (first at line 2; remove one)"},
		},
		{
			name: "types that do not fit the area, bit out of place",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: digital, area: coil, address: 0, type: uint16}
      - {name: B, kind: digital, area: holding, address: 1, type: bool}
      - {name: C, kind: digital, area: holding, address: 2, type: bit}
      - {name: D, kind: count, area: holding, address: 3, bit: 4}
      - {name: E, kind: count, area: holding, address: 65535, type: float32}
      - {name: F, kind: count, area: holding, address: 70000}
      - {name: G/1, kind: counter, area: register, address: 0}
`,
			want: []string{
				"plant.yaml:11:64: devices[0].tags[0].type: uint16 cannot be read from a coil (coils and discrete inputs hold one bit: use bool)",
				"plant.yaml:12:67: devices[0].tags[1].type: bool is for coils and discrete inputs (for one bit of a register use type: bit with bit: 0..15)",
				"plant.yaml:13:9: devices[0].tags[2].bit: missing (which bit of the register, 0..15, 0 = least significant)",
				"plant.yaml:14:64: devices[0].tags[3].bit: is only used with type: bit (this tag is uint16)",
				"plant.yaml:15:56: devices[0].tags[4].address: 65535 with type float32 reads 2 registers, past the last address 65535",
				"plant.yaml:16:56: devices[0].tags[5].address: 70000 is out of range (0..65535, 0-based: register 40001 is holding address 0)",
				`plant.yaml:17:16: devices[0].tags[6].name: "G/1" contains a space, '/', '+' or '#' (write it like LT-101)`,
				`plant.yaml:17:27: devices[0].tags[6].kind: "counter" is not a kind (one of temperature, pressure, level, flow, gas, digital, count)`,
				`plant.yaml:17:42: devices[0].tags[6].area: "register" is not a Modbus area (one of coil, discrete, holding, input)`,
			},
		},
		{
			name: "alarms on bool tags, scale without range",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: digital, area: discrete, address: 0, alarms: {hh: 1}}
      - {name: B, kind: digital, area: discrete, address: 1, alarms: {h: 1, l: 0}}
      - {name: C, kind: digital, area: discrete, address: 2, alarms: {h: 0.5}}
      - {name: D, kind: count, area: input, address: 0, scale: {raw_min: 4}}
`,
			want: []string{
				"plant.yaml:11:75: devices[0].tags[0].alarms.hh: is not used on type bool (a bool or bit tag alarms with h: 1 (when on) or l: 0 (when off))",
				"plant.yaml:12:80: devices[0].tags[1].alarms.l: set together with h: the tag would always be in alarm (choose one: a bool or bit tag alarms with h: 1 (when on) or l: 0 (when off))",
				"plant.yaml:13:74: devices[0].tags[2].alarms.h: 0.5 on type bool never or always trips (a bool or bit tag alarms with h: 1 (when on) or l: 0 (when off))",
				"plant.yaml:14:64: devices[0].tags[3].scale: needs range (the engineering range the raw values map onto)",
				"plant.yaml:14:64: devices[0].tags[3].scale.raw_max: missing (the raw value at range.max, e.g. 4 and 20 for 4-20 mA)",
			},
		},
		{
			name: "gas alarms above GB/T 50493 limits",
			src: `gateway:
  id: gw-1
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: gas
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - name: GT-1
        kind: gas
        unit: "%LEL"
        area: input
        address: 0
        range: {min: 0, max: 100}
        alarms: {h: 30, hh: 60}
`,
			want: []string{
				"plant.yaml:17:21: devices[0].tags[0].alarms.h: first alarm 30 %LEL is above 25 %LEL (GB/T 50493-2019 5.5.2: 一级报警 <= 25%LEL)",
				"plant.yaml:17:29: devices[0].tags[0].alarms.hh: second alarm 60 %LEL is above 50 %LEL (GB/T 50493-2019 5.5.2: 二级报警 <= 50%LEL)",
			},
		},
		{
			name: "uplink credentials and TLS",
			src: `gateway:
  id: "gw/1"
  enterprise_code: "E1"
uplink:
  brokers: [tcp://127.0.0.1:1883]
  topic_prefix: plant/#
  password_file: /etc/pw
  password_env: PW
  inflight: 0
  tls:
    cert_file: /etc/cert.pem
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: count, area: input, address: 0}
`,
			want: []string{
				`plant.yaml:2:7: gateway.id: "gw/1" is not allowed (use 1 to 64 of A-Z a-z 0-9 _ . -; it goes into MQTT topics, where / + # are special)`,
				`plant.yaml:6:17: uplink.topic_prefix: "plant/#" is not a topic prefix (levels separated by single '/', no '+' or '#', no '/' at either end)`,
				"plant.yaml:7:18: uplink.password_file: a password needs uplink.username (MQTT 3.1.1 sends no password without a user name)",
				"plant.yaml:8:17: uplink.password_env: set together with password_file (choose one)",
				"plant.yaml:9:13: uplink.inflight: 0 is out of range (1..1000)",
				"plant.yaml:11:5: uplink.tls: is set, but no broker URL uses ssl://, tls:// or wss://, so it would be ignored and the connection unencrypted (use ssl://HOST:8883)",
				"plant.yaml:11:16: uplink.tls.cert_file: set without key_file (mutual TLS needs both, or neither)",
			},
		},
		{
			name: "required sections missing",
			src:  "buffer:\n  max_bytes: 1000\n",
			want: []string{
				"plant.yaml:1:1: devices: missing (at least one device to poll)",
				"plant.yaml:1:1: gateway.enterprise_code: missing (企业编码, the enterprise code the supervision platform issued)",
				"plant.yaml:1:1: gateway.id: missing (a name for this gateway, unique on the platform, e.g. tank-farm-1; it goes into MQTT topics)",
				"plant.yaml:1:1: uplink.brokers: missing (a list of broker URLs, tried in order, like ssl://platform.example.com:8883)",
				"plant.yaml:2:14: buffer.max_bytes: 1KB is too small (at least 1MiB)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.src)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestEveryProblemIsReportedInLineOrder(t *testing.T) {
	src := `devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    unit_id: 300
    tags:
      - name: LT-1
        kind: level
        area: holding
        address: 0
        range: {min: 0, max: 20}
        alarms: {h: 17, hh: 15}
gateway:
  id: gw-1
  enterprise_code: "E1"
  data_dri: /tmp
uplink:
  brokers: [ftp://x:1]
`
	got := problems(t, src)
	want := []string{
		"plant.yaml:5:14: devices[0].unit_id: 300 is out of range (0..255)",
		"plant.yaml:12:29: devices[0].tags[0].alarms.hh: hh 15 is below h 17 (hh must be >= h)",
		"plant.yaml:16:3: gateway.data_dri: unknown field (did you mean data_dir?)",
		`plant.yaml:18:13: uplink.brokers[0]: scheme "ftp" is not supported (use tcp, mqtt, ssl, tls, ws or wss)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestValidFileGetsDefaults(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != "plant.yaml" {
		t.Errorf("Path = %q", cfg.Path)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.Gateway.DataDir, "./data"},
		{"max_bytes", cfg.Buffer.MaxBytes, ByteSize(256 << 20)},
		{"max_age", cfg.Buffer.MaxAge.D(), 720 * time.Hour},
		{"topic_prefix", cfg.Uplink.TopicPrefix, "hazgate"},
		{"client_id", cfg.Uplink.ClientID, "gw-1"},
		{"keepalive", cfg.Uplink.KeepAlive.D(), 30 * time.Second},
		{"connect_timeout", cfg.Uplink.ConnectTimeout.D(), 10 * time.Second},
		{"inflight", cfg.Uplink.Inflight, 32},
		{"batch_max", cfg.Uplink.BatchMax, 100},
		{"heartbeat", cfg.Uplink.Heartbeat.D(), 60 * time.Second},
		{"reconnect_max", cfg.Uplink.ReconnectMax.D(), 30 * time.Second},
		{"unit_id", cfg.Devices[0].UnitID, 1},
		{"interval", cfg.Devices[0].Interval.D(), time.Second},
		// The 1s default timeout would equal the 1s interval: it shrinks to half.
		{"timeout", cfg.Devices[0].Timeout.D(), 500 * time.Millisecond},
		{"max_gap", cfg.Devices[0].MaxGap, 8},
		{"comm_loss_after", cfg.Devices[0].CommLossAfter.D(), 10 * time.Second},
		{"backoff_max", cfg.Devices[0].BackoffMax.D(), 30 * time.Second},
		{"type", cfg.Devices[0].Tags[0].Type, "uint16"},
		{"order", cfg.Devices[0].Tags[0].Order, "ABCD"},
		{"address", *cfg.Devices[0].Tags[0].Address, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestExplicitZeroKeepsItsMeaning(t *testing.T) {
	src := `gateway: {id: gw-1, enterprise_code: E1}
buffer: {max_age: 0}
uplink: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    unit_id: 0
    max_gap: 0
    interval: 5s
    tags:
      - {name: X1, kind: digital, area: coil, address: 7}
      - {name: X2, kind: digital, area: holding, address: 7, type: bit, bit: 0, alarms: {l: 0}}
`
	cfg, err := Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Devices[0]
	if d.UnitID != 0 || d.MaxGap != 0 || cfg.Buffer.MaxAge != 0 {
		t.Errorf("explicit zeros replaced: unit_id %d, max_gap %d, max_age %s", d.UnitID, d.MaxGap, cfg.Buffer.MaxAge)
	}
	if d.Timeout.D() != time.Second {
		t.Errorf("timeout = %s, want the 1s default with a 5s interval", d.Timeout)
	}
	if d.Tags[0].Type != TypeBool {
		t.Errorf("coil type = %q, want bool", d.Tags[0].Type)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../../configs/example.yaml")
	if err != nil {
		t.Fatalf("configs/example.yaml:\n%v", err)
	}
	tags := cfg.TagByName()
	for _, name := range []string{"LT-101", "LT-101B", "TT-101", "PT-101", "LT-102", "GT-101", "GT-102", "GT-103"} {
		if tags[name] == nil {
			t.Errorf("example has no tag %s", name)
		}
	}
	if gt := tags["GT-101"]; gt != nil && (gt.Alarms == nil || *gt.Alarms.H != 20 || *gt.Alarms.HH != 40) {
		t.Errorf("GT-101 alarms = %+v, want first 20 and second 40 %%LEL", gt.Alarms)
	}
	if cfg.Uplink.Brokers[0] != "ssl://platform.example.gov.cn:8883" || cfg.Uplink.TLS.CAFile == "" || cfg.Uplink.PasswordFile == "" {
		t.Errorf("uplink = %+v", cfg.Uplink)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hazgate.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(minimal))
	if cfg.Hash() != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash = %s, want the SHA-256 of the file", cfg.Hash())
	}
	other, err := Parse("x.yaml", []byte(minimal+"# a comment changes the hash\n"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash() == cfg.Hash() {
		t.Error("different bytes, same hash")
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 1 || !strings.HasPrefix(err.Error(), filepath.Join(dir, "missing.yaml")+": cannot read the config: ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTagByNameAndWidth(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.TagByName()
	if len(m) != 1 || m["LT-1"] != &cfg.Devices[0].Tags[0] {
		t.Errorf("TagByName = %v, want a pointer into Devices", m)
	}
	widths := map[string]int{
		TypeBool: 1, TypeBit: 1, TypeInt16: 1, TypeUint16: 1,
		TypeInt32: 2, TypeUint32: 2, TypeFloat32: 2, TypeFloat64: 4,
	}
	for typ, want := range widths {
		tag := Tag{Type: typ}
		if got := tag.Width(); got != want {
			t.Errorf("Width(%s) = %d, want %d", typ, got, want)
		}
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	src := `gateway: {id: gw-1, enterprise_code: E1}
uplink: {brokers: ["tcp://127.0.0.1:1883"]}
x-device: &plc
  protocol: modbus-tcp
  interval: 2s
  timeout: 300ms
devices:
  - <<: *plc
    name: plc1
    address: 127.0.0.1:502
    tags: &tags
      - {name: A1, kind: count, area: input, address: 0}
  - <<: *plc
    name: plc2
    address: 127.0.0.1:503
    interval: 3s
    tags:
      - {name: A2, kind: count, area: input, address: 0}
`
	// x-device is not a field: anchors need a home in the schema, so this
	// must fail with the unknown field only.
	got := problems(t, src)
	want := []string{"plant.yaml:3:1: x-device: unknown field (valid fields: gateway, buffer, uplink, devices, interlocks, web, alarm_outputs, history)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Anchored in a real field, the merge works: explicit keys win.
	src = strings.Replace(src, "x-device: &plc\n  protocol: modbus-tcp\n  interval: 2s\n  timeout: 300ms\n", "", 1)
	src = strings.Replace(src, "devices:\n  - <<: *plc\n", "devices:\n  - &plc\n    protocol: modbus-tcp\n    interval: 2s\n    timeout: 300ms\n", 1)
	cfg, err := Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	d := cfg.Devices
	if d[1].Protocol != "modbus-tcp" || d[1].Interval.D() != 3*time.Second || d[1].Timeout.D() != 300*time.Millisecond || d[1].Tags[0].Name != "A2" {
		t.Errorf("merged device = %+v", d[1])
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("gateway: {id: gw-1, enterprise_code: E1}\nuplink: {brokers: [\"tcp://127.0.0.1:1883\"]}\ndevices:\n")
	b.WriteString("  - &d {name: d, protocol: modbus-tcp, address: \"127.0.0.1:502\", tags: &t [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{name: a, kind: count, area: input, address: 0}")
	}
	b.WriteString("]}\n")
	for range 2000 {
		b.WriteString("  - *d\n")
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("accepted")
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("took %s", elapsed)
	}
	if !strings.Contains(err.Error(), "expands to more than") {
		t.Errorf("no expansion limit reported:\n%.500s", err)
	}
}

func TestSelfMergeIsBounded(t *testing.T) {
	src := "gateway: &g {id: gw-1, <<: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g, *g]}\n"
	done := make(chan error, 1)
	go func() {
		_, err := Parse("merge.yaml", []byte(src))
		done <- err
	}()
	select {
	case err := <-done:
		want := "merge.yaml:1:24: gateway: a merge (<<) includes the mapping it is in"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %s", err, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Parse did not return within 20s")
	}
}
