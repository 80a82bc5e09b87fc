package config

import (
	"net"
	"strings"
)

// DefaultWebListen is where the status page, /metrics and /healthz are
// served when the file says nothing: loopback only, so that nothing is
// exposed on the plant network unless the integrator asks for it.
const DefaultWebListen = "127.0.0.1:8080"

// DefaultWebUsername is the basic-auth user name when a password is set.
const DefaultWebUsername = "hazgate"

// Web is the local HTTP server: the status page at /, /metrics for
// Prometheus and /healthz for a watchdog (internal/web).
type Web struct {
	Enabled      *bool  `yaml:"enabled"`       // default true
	Listen       string `yaml:"listen"`        // host:port; default 127.0.0.1:8080
	Username     string `yaml:"username"`      // basic-auth user; default hazgate
	PasswordFile string `yaml:"password_file"` // required unless listen is a loopback address
	CertFile     string `yaml:"cert_file"`     // TLS certificate (PEM); with key_file serves HTTPS
	KeyFile      string `yaml:"key_file"`      // TLS private key (PEM)
}

// On says whether the web server runs.
func (w Web) On() bool { return w.Enabled == nil || *w.Enabled }

// TLS says whether the server speaks HTTPS.
func (w Web) TLS() bool { return w.CertFile != "" && w.KeyFile != "" }

// Loopback says whether addr (host:port) can only be reached from this
// machine. An empty host or an unspecified address (0.0.0.0, ::) listens
// on every interface and is not loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
