package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hazgate/internal/config"
)

func TestNewRefusesOpenAddressWithoutPassword(t *testing.T) {
	src := func() Snapshot { return Snapshot{} }
	for _, listen := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8080"} {
		if _, err := New(Options{Config: config.Web{Listen: listen}, Source: src}); err == nil || !strings.Contains(err.Error(), "no password_file") {
			t.Errorf("%s without a password: %v", listen, err)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Config: config.Web{Listen: "0.0.0.0:0", PasswordFile: empty}, Source: src}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty password file: %v", err)
	}
	if _, err := New(Options{Config: config.Web{Listen: "0.0.0.0:0", PasswordFile: empty + ".missing"}, Source: src}); err == nil {
		t.Error("missing password file accepted")
	}
	if _, err := New(Options{Config: config.Web{Listen: "127.0.0.1:0"}, Source: src}); err != nil {
		t.Errorf("loopback without password: %v", err)
	}
}
