// Package broker runs an embedded MQTT broker (mochi-mqtt) for the demo and
// the fast tests, so that neither needs a broker installed on the machine.
// Production gateways talk to the platform's broker, never to this one.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Message is one publish seen by an in-process subscriber.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	tcp    *listeners.TCP
	subID  atomic.Int32
	closed atomic.Bool
}

// Start listens on addr (host:port; port 0 picks a free one) and serves
// MQTT 3.1.1 and 5 to anyone (no authentication: loopback use only).
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// mochi logs every client that goes away (a normal event here: tests
	// and the demo cut connections on purpose) at WARN; only its errors
	// are worth a reader's attention.
	log = slog.New(minLevel{Handler: log.Handler(), min: slog.LevelError})
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: allow-all hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
}

// minLevel drops records below min before they reach Handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(a), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// Addr is the address the broker listens on, with the real port.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker URL a client connects to.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Subscribe delivers every publish that matches filter to fn, inside the
// broker, on the same goroutine that wrote the PUBACK to its sender (QoS 1).
// A message the broker acknowledged therefore always reaches fn, even if
// the broker is closed right after: tests rely on that to count gaps.
func (b *Broker) Subscribe(filter string, fn func(Message)) error {
	id := int(b.subID.Add(1))
	return b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Retained: pk.FixedHeader.Retain})
	})
}

// Publish sends a message from inside the broker (QoS 0 or 1).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// Close stops the broker and disconnects every client. It is safe to call twice.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.srv.Close()
}
