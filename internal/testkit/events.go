package testkit

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"hazgate/internal/broker"
)

// Events records the JSON objects published on a broker topic, typically
// the gateway's event messages, as the platform receives them.
type Events struct {
	mu  sync.Mutex
	got []map[string]any
}

// CollectEvents subscribes to topic on b ("hazgate/+/event") and records
// every message that decodes as a JSON object; others are skipped.
func CollectEvents(t testing.TB, b *broker.Broker, topic string) *Events {
	t.Helper()
	e := &Events{}
	err := b.Subscribe(topic, func(m broker.Message) {
		var v map[string]any
		if json.Unmarshal(m.Payload, &v) != nil {
			return
		}
		e.mu.Lock()
		e.got = append(e.got, v)
		e.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	return e
}

// All returns the messages received so far, in arrival order.
func (e *Events) All() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// Find returns the first message received so far whose fields equal all
// of want's, compared as decoded JSON (strings, float64 numbers, bools).
func (e *Events) Find(want map[string]any) (map[string]any, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
next:
	for _, ev := range e.got {
		for k, v := range want {
			if ev[k] != v {
				continue next
			}
		}
		return ev, true
	}
	return nil, false
}
