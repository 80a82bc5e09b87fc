package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/config"
)

// conn is one MQTT connection: a paho client used for exactly one network
// connection and then thrown away.
type conn struct {
	client mqtt.Client
	broker string     // URL without user info
	lost   chan error // receives once when paho sees the connection drop
	netMu  sync.Mutex //
	nc     net.Conn   // the socket, so that we can cut it without a DISCONNECT
}

// abort closes the socket without an MQTT DISCONNECT, so that the broker
// publishes the last will, and lets paho fail everything in flight.
func (c *conn) abort() {
	c.netMu.Lock()
	nc := c.nc
	c.netMu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
	c.client.Disconnect(0)
}

// connect opens one connection to broker b, with the offline status as
// last will. The client never reconnects by itself.
func (u *Uplink) connect(ctx context.Context, b *url.URL) (*conn, error) {
	c := &conn{broker: redact(b), lost: make(chan error, 1)}
	will := u.statusPayload(StateOffline, ReasonConnectionLost, c.broker, time.Now())

	o := mqtt.NewClientOptions()
	o.AddBroker(b.String())
	o.SetClientID(u.clientID)
	o.SetProtocolVersion(4) // MQTT 3.1.1
	o.SetCleanSession(true)
	// The heart of the delivery guarantee (see the package comment): no
	// reconnect, no retry, a fresh store per connection.
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetStore(mqtt.NewMemoryStore())
	o.SetKeepAlive(u.keepAlive)
	o.SetPingTimeout(u.connectTimeout)
	o.SetConnectTimeout(u.connectTimeout)
	o.SetWriteTimeout(u.connectTimeout)
	o.SetBinaryWill(u.topicStatus, will, 1, true)
	if u.username != "" {
		o.SetUsername(u.username)
		o.SetPassword(u.password)
	}
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case c.lost <- err:
		default:
		}
	})
	o.SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		nc, err := u.dial(ctx, uri)
		if err != nil {
			return nil, err
		}
		c.netMu.Lock()
		c.nc = nc
		c.netMu.Unlock()
		return nc, nil
	})
	c.client = mqtt.NewClient(o)

	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.abort()
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		c.client.Disconnect(0)
		return nil, fmt.Errorf("connect to %s: %w", c.broker, err)
	}
	return c, nil
}

// dial opens the TCP or TLS socket for uri.
func (u *Uplink) dial(ctx context.Context, uri *url.URL) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.connectTimeout)
	defer cancel()
	switch uri.Scheme {
	case "ssl", "tls":
		cfg := u.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = uri.Hostname()
		}
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", uri.Host)
	default:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", uri.Host)
	}
}

// tlsConfig builds the client TLS settings: the CA file (or the system
// roots), an optional client certificate for mutual TLS, the server name.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // #nosec G402: commissioning only, documented
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uplink: tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("uplink: tls.cert_file and tls.key_file go together: set both for mutual TLS, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
