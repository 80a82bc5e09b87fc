package watch

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Options say what to watch.
type Options struct {
	Broker   string // tcp://host:port or ssl://host:port
	Gateway  string // one gateway id; "" or "+" watches every gateway
	Prefix   string // topic prefix; "" means hazgate
	Username string
	Password string
	CAFile   string // for ssl://: the CA that signed the broker's certificate
	CertFile string // client certificate for mutual TLS, with KeyFile
	KeyFile  string
	// Ready, when set, is called once the subscription is in place: a
	// test can start publishing then without losing the first messages.
	Ready func()
}

// Run subscribes to the gateway topics and hands every message to c until
// ctx ends; then it disconnects. The caller calls c.Finish.
func Run(ctx context.Context, opts Options, c *Checker) error {
	b, err := url.Parse(opts.Broker)
	if err != nil || b.Host == "" {
		return fmt.Errorf("watch: --broker %q is not a URL such as tcp://127.0.0.1:1883", opts.Broker)
	}
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	if prefix == "" {
		prefix = "hazgate"
	}
	gw := opts.Gateway
	if gw == "" {
		gw = "+"
	}
	if strings.ContainsAny(gw, "/#") || (strings.Contains(gw, "+") && gw != "+") {
		return fmt.Errorf("watch: --gateway %q: a gateway id, or + for all", gw)
	}

	o := mqtt.NewClientOptions()
	o.AddBroker(opts.Broker)
	o.SetClientID("hazgate-watch-" + randomID())
	o.SetProtocolVersion(4)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectTimeout(10 * time.Second)
	o.SetOrderMatters(true) // hand messages to the checker in arrival order
	if opts.Username != "" {
		o.SetUsername(opts.Username)
		o.SetPassword(opts.Password)
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return fmt.Errorf("watch: --ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("watch: --ca %s: no PEM certificate", opts.CAFile)
		}
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return fmt.Errorf("watch: client certificate: %w", err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if opts.CAFile != "" {
			cfg = o.TLSConfig.Clone()
			cfg.Certificates = []tls.Certificate{cert}
		}
		o.SetTLSConfig(cfg)
	}
	lost := make(chan error, 1)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		cl.Disconnect(0)
		return fmt.Errorf("watch: connect to %s: %w", redact(b), orTimeout(tok.Error()))
	}
	defer cl.Disconnect(250)

	filter := prefix + "/" + gw + "/#"
	st := cl.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		c.Handle(m.Topic(), m.Payload(), m.Retained())
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return fmt.Errorf("watch: subscribe %s: %w", filter, orTimeout(st.Error()))
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-lost:
		return fmt.Errorf("watch: connection to %s lost: %w", redact(b), err)
	}
}

func orTimeout(err error) error {
	if err == nil {
		return errors.New("timed out")
	}
	return err
}

func redact(b *url.URL) string {
	c := *b
	c.User = nil
	return c.String()
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
