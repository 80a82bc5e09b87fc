package config

import (
	"strings"
	"testing"
)

const webBase = `gateway:
  id: gw1
  enterprise_code: E1
uplink:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: A, kind: count, area: input, address: 0}
`

func TestWebDefaults(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(webBase))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Web
	if !w.On() || w.Listen != DefaultWebListen || w.Username != DefaultWebUsername || w.TLS() {
		t.Fatalf("defaults: %+v", w)
	}
	if !Loopback(w.Listen) {
		t.Fatalf("default %s is not loopback", w.Listen)
	}
	cfg, err = Parse("plant.yaml", []byte(webBase+"web:\n  enabled: false\n  listen: 0.0.0.0:80\n"))
	if err != nil {
		t.Fatalf("a disabled web server needs no password: %v", err)
	}
	if cfg.Web.On() {
		t.Fatal("enabled: false is on")
	}
	cfg, err = Parse("plant.yaml", []byte(webBase+"web:\n  listen: 10.0.0.5:8443\n  password_file: /etc/hazgate/web.pw\n  cert_file: /etc/hazgate/web.crt\n  key_file: /etc/hazgate/web.key\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Web.TLS() || cfg.Web.Listen != "10.0.0.5:8443" {
		t.Fatalf("%+v", cfg.Web)
	}
}

func TestWebProblems(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"web:\n  listen: 0.0.0.0:8080\n", "plant.yaml:13:3: web.password_file: missing (a file holding the status page password: 0.0.0.0:8080 is reachable from the network (or listen on 127.0.0.1))"},
		{"web:\n  listen: :8080\n", "plant.yaml:13:3: web.password_file: missing (a file holding the status page password: :8080 is reachable from the network (or listen on 127.0.0.1))"},
		{"web:\n  listen: 192.168.1.20:8080\n", "plant.yaml:13:3: web.password_file: missing (a file holding the status page password: 192.168.1.20:8080 is reachable from the network (or listen on 127.0.0.1))"},
		{"web:\n  listen: 8080\n", `plant.yaml:13:11: web.listen: "8080" is not host:port (e.g. 127.0.0.1:8080)`},
		{"web:\n  listen: 127.0.0.1:http\n", `plant.yaml:13:11: web.listen: port "http" is not a number 0..65535`},
		{"web:\n  listen: gateway.local:8080\n  password_file: /pw\n", `plant.yaml:13:11: web.listen: host "gateway.local" is not an IP address (use the address of one interface, 0.0.0.0 for all, or 127.0.0.1)`},
		{"web:\n  cert_file: /c.pem\n", "plant.yaml:13:3: web.key_file: missing (the TLS private key that goes with web.cert_file)"},
		{"web:\n  key_file: /k.pem\n", "plant.yaml:13:3: web.cert_file: missing (the TLS certificate that goes with web.key_file)"},
		{"web:\n  listen: 127.0.0.1:8080\n  colour: red\n", "plant.yaml:14:3: web.colour"},
	} {
		got := strings.Join(problems(t, webBase+tt.src), "\n")
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:1": true, "[::1]:8080": true, "localhost:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:80": false, "10.1.1.1:80": false, "8080": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v", addr, got)
		}
	}
}
