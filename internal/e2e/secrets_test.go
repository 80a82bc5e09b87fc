package e2e

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/testkit"
)

// TestNoSecretsInLogs runs the real binary at debug level with every
// secret a gateway holds (the broker password, the OPC UA user password
// from the environment, the remote-command HMAC key, the status page
// password), reloads it with a valid and an invalid config, and stops it:
// none of the secrets may appear in its output, in text or JSON. The
// config itself, logged as a value, must not carry them either.
func TestNoSecretsInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const (
		uplinkPW = "Upl1nk-Secret-9f3a"
		opcuaPW  = "Opc-Secret-77b1"
		webPW    = "W3b-Secret-55c0"
		cmdKey   = "Cmd-Key-Secret-0123456789abcdef0123456789"
	)
	secrets := []string{uplinkPW, opcuaPW, webPW, cmdKey}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)

	pwFile := testkit.WriteFile(t, dir, "uplink.pw", []byte(uplinkPW+"\n"))
	webFile := testkit.WriteFile(t, dir, "web.pw", []byte(webPW+"\n"))
	keyFile := testkit.WriteFile(t, dir, "command.key", []byte(cmdKey+"\n"))
	trust := filepath.Join(dir, "trusted")
	if err := os.Mkdir(trust, 0o700); err != nil {
		t.Fatal(err)
	}
	y := string(testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), filepath.Join(dir, "data")))
	for old, repl := range map[string]string{
		"  topic_prefix: hazgate\n": fmt.Sprintf("  topic_prefix: hazgate\n  username: gw-01\n  password_file: %q\n  commands: {key_file: %q, allow: [status, read]}\n", pwFile, keyFile),
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("configs/demo.yaml no longer contains %q; update this test", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	i := strings.Index(y, "name: reactor-r301")
	j := strings.Index(y[i:], "    backoff_max: 5s\n")
	if i < 0 || j < 0 {
		t.Fatal("configs/demo.yaml changed; update this test")
	}
	j += i + len("    backoff_max: 5s\n")
	y = y[:j] + fmt.Sprintf("    opcua: {security_policy: Basic256Sha256, security_mode: SignAndEncrypt, trust_dir: %q, username: operator, password_env: HAZGATE_TEST_OPCUA_PASSWORD}\n", trust) + y[j:]
	y += fmt.Sprintf("web: {listen: \"127.0.0.1:0\", password_file: %q}\n", webFile)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(y))
	t.Setenv("HAZGATE_TEST_OPCUA_PASSWORD", opcuaPW) // inherited by the gateway
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("test config: %v", err)
	}

	// The config as a log value, in both formats.
	var asValue bytes.Buffer
	slog.New(slog.NewTextHandler(&asValue, nil)).Info("config", "config", cfg)
	slog.New(slog.NewJSONHandler(&asValue, nil)).Info("config", "config", cfg)

	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			logs := &testkit.SyncBuffer{}
			cmd := startGateway(t, bin, cfgPath, logs, "--log-level", "debug", "--log-format", format, "--log-repeat", "0")
			testkit.LogOnFailure(t, "gateway output", logs)
			before := coll.max("data")
			waitFor(t, 15*time.Second, "data", func() bool { return coll.max("data") > before+20 })
			// A reload, and a refused one, log too.
			testkit.WriteFile(t, dir, "gateway.yaml", reactorVariantOf(t, []byte(y), "comm_loss_after: 4s"))
			_ = cmd.Process.Signal(syscall.SIGHUP)
			waitFor(t, 10*time.Second, "the reload", func() bool { return strings.Contains(logs.String(), "config reloaded") })
			testkit.WriteFile(t, dir, "gateway.yaml", []byte(strings.Replace(y, "  username: gw-01\n", "  username: gw-01\n  password: "+uplinkPW+"\n", 1)))
			_ = cmd.Process.Signal(syscall.SIGHUP)
			waitFor(t, 10*time.Second, "the refusal", func() bool { return strings.Contains(logs.String(), "not valid") })
			testkit.WriteFile(t, dir, "gateway.yaml", []byte(y))
			stopGateway(t, cmd)
			out := logs.String()
			if !strings.Contains(out, "reactor-r301") {
				t.Errorf("the OPC UA device left no trace in the log; was it tried?")
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("a secret (%s...) appears in the %s log", s[:4], format)
				}
			}
		})
	}
	for _, s := range secrets {
		if strings.Contains(asValue.String(), s) {
			t.Errorf("a secret (%s...) appears in the config logged as a value", s[:4])
		}
	}
}

// reactorVariantOf replaces the reactor's comm_loss_after: 3s with repl.
func reactorVariantOf(t *testing.T, y []byte, repl string) []byte {
	t.Helper()
	s := string(y)
	i := strings.Index(s, "name: reactor-r301")
	if i < 0 || !strings.Contains(s[i:], "comm_loss_after: 3s") {
		t.Fatal("configs/demo.yaml changed; update this test")
	}
	return []byte(s[:i] + strings.Replace(s[i:], "comm_loss_after: 3s", repl, 1))
}
