// Package configs carries the example configurations shipped inside the
// hazgate binary.
package configs

import _ "embed"

// demoYAML is configs/demo.yaml, the configuration `hazgate demo` runs.
//
//go:embed demo.yaml
var demoYAML []byte

// DemoYAML returns a copy of configs/demo.yaml, so that no caller can
// change what the next one reads.
func DemoYAML() []byte { return append([]byte(nil), demoYAML...) }
