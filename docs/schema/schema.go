// Package schema holds the JSON Schemas of the uplink contract
// (docs/uplink.md) and validates payloads against them. The .json files
// beside this file are the published schemas; they are embedded so that
// the tests and `hazgate watch` check exactly what integrators read.
package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.schema.json
var files embed.FS

// Kinds of payload, one schema each.
const (
	Data    = "data"
	Event   = "event"
	Status  = "status"
	Command = "command"     // the signed envelope
	Body    = "commandbody" // the command inside the envelope's body
	Reply   = "reply"
)

// Set is the compiled schemas. It is safe for concurrent use.
type Set struct {
	byKind map[string]*jsonschema.Schema
}

// Load compiles the embedded schemas (a few milliseconds: compile once and
// keep the Set).
func Load() (*Set, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
		if err := c.AddResource(e.Name(), doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
	}
	s := &Set{byKind: make(map[string]*jsonschema.Schema)}
	for kind, loc := range map[string]string{
		Data:    "data.schema.json",
		Event:   "event.schema.json",
		Status:  "status.schema.json",
		Command: "command.schema.json",
		Body:    "command.schema.json#/$defs/body",
		Reply:   "reply.schema.json",
	} {
		sch, err := c.Compile(loc)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", loc, err)
		}
		s.byKind[kind] = sch
	}
	return s, nil
}

// Validate checks payload against the schema of kind.
func (s *Set) Validate(kind string, payload []byte) error {
	sch, ok := s.byKind[kind]
	if !ok {
		return fmt.Errorf("schema: unknown kind %q", kind)
	}
	// UseNumber keeps integers exact: a sequence number above 2^53 must
	// not turn into a float on its way to the validator.
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("%s: not JSON: %w", kind, err)
	}
	if d.More() {
		return fmt.Errorf("%s: more than one JSON value", kind)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// KindOfTopic maps a topic's last level (data, event, status, reply, or a
// command topic's cmd/<name>) to the kind of its payload; "" when the
// topic is not part of the contract.
func KindOfTopic(topic string) string {
	levels := strings.Split(topic, "/")
	if len(levels) >= 2 && levels[len(levels)-2] == "cmd" {
		return Command // cmd/status is a command, not a status
	}
	switch last := levels[len(levels)-1]; last {
	case Data, Event, Status, Reply:
		return last
	}
	return ""
}
