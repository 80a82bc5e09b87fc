package config

import (
	"strings"
	"testing"
	"time"
)

func TestUplinkCommandsConfig(t *testing.T) {
	base := `gateway:
  id: gw-01
  enterprise_code: E1
  data_dir: /tmp/x
uplink:
  brokers: [tcp://127.0.0.1:1883]
%s
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: LT-101, kind: level, area: holding, address: 0, type: uint16, range: {min: 0, max: 20}}
`
	cases := []struct {
		commands string
		problems []string // substrings, each must appear; none = valid
	}{
		{"  commands:\n    key_file: /etc/k\n    allow: [status, ack]\n", nil},
		{"  commands:\n    allow: [status]\n", []string{"uplink.commands.key_file: missing"}},
		{"  commands:\n    key_file: /etc/k\n", []string{"uplink.commands.allow: missing"}},
		{"  commands:\n    key_file: /etc/k\n    allow: [status, reboot, status]\n", []string{`"reboot" is not a command`, `"status" is listed twice`}},
		{"  commands:\n    key_file: /etc/k\n    allow: [status]\n    window: 2s\n", []string{"uplink.commands.window: 2s is outside 10s..1h"}},
	}
	for i, c := range cases {
		cfg, err := Parse("plant.yaml", []byte(strings.Replace(base, "%s", c.commands, 1)))
		if len(c.problems) == 0 {
			if err != nil {
				t.Errorf("case %d: %v", i, err)
				continue
			}
			if cfg.Uplink.Commands == nil || time.Duration(cfg.Uplink.Commands.Window) != 2*time.Minute {
				t.Errorf("case %d: window default not applied: %+v", i, cfg.Uplink.Commands)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d: no error, want %v", i, c.problems)
			continue
		}
		for _, p := range c.problems {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("case %d: %q lacks %q", i, err, p)
			}
		}
	}
}
