package web_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

func TestHTTPSWithPassword(t *testing.T) {
	certFile, keyFile, pool := testkit.SelfSignedCert(t, "hazgate test", "127.0.0.1")
	pw := testkit.WriteTempFile(t, "web.pw", "tank-farm\n")
	r := startRig(t, false, fmt.Sprintf("web:\n  listen: 127.0.0.1:0\n  password_file: %q\n  cert_file: %q\n  key_file: %q\n", pw, certFile, keyFile))
	if !strings.HasPrefix(r.url, "https://") {
		t.Fatalf("url %s, want https", r.url)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", r.url+"metrics", nil)
	req.SetBasicAuth("hazgate", "tank-farm")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https /metrics with the password: %s", resp.Status)
	}
	// plain HTTP on the TLS port gets nothing useful
	plain := strings.Replace(r.url, "https://", "http://", 1)
	if resp, err := client.Get(plain + "metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain http served metrics on the TLS port")
		}
	}
}
