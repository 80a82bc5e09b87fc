package config

import (
	"net"
	"strconv"
)

// web checks the web section and fills in its defaults. A status page
// reachable from the plant network shows every reading and alarm, so any
// address other than loopback needs a password.
func (v *validator) web(c *Config) {
	w := &c.Web
	if w.Listen == "" {
		w.Listen = DefaultWebListen
	}
	if w.Username == "" {
		w.Username = DefaultWebUsername
	}
	if !w.On() {
		return
	}
	host, port, err := net.SplitHostPort(w.Listen)
	if err != nil {
		v.report("web.listen", "%q is not host:port (e.g. 127.0.0.1:8080)", w.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.report("web.listen", "port %q is not a number 0..65535", port)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		v.report("web.listen", "host %q is not an IP address (use the address of one interface, 0.0.0.0 for all, or 127.0.0.1)", host)
	}
	if !Loopback(w.Listen) && w.PasswordFile == "" {
		v.missing("web.password_file", "a file holding the status page password: "+w.Listen+" is reachable from the network (or listen on 127.0.0.1)")
	}
	if (w.CertFile == "") != (w.KeyFile == "") {
		if w.CertFile == "" {
			v.missing("web.cert_file", "the TLS certificate that goes with web.key_file")
		} else {
			v.missing("web.key_file", "the TLS private key that goes with web.cert_file")
		}
	}
}
