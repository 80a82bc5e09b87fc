package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that no input makes Parse panic, that a rejected input
// always comes with at least one positioned problem, and that an accepted
// input decodes to exactly what yaml.v3's own strict decoder makes of it.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../configs/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		minimal,
		string(example),
		"",
		"gateway: [",
		"gateway:\n  id: x\n\tfoo: 1\n",
		"- 1\n",
		"gateway: &g {id: a}\nbuffer: *g\n",
		"devices: [{tags: [{alarms: {h: 1, hh: 0}}]}]\n",
		"uplink: {brokers: ['tcp://h:1', 'ssl://[::1]:8883']}\n",
		"devices: [{interval: 5, timeout: 1.5s, unit_id: 0x10}]\n",
		"buffer: {max_bytes: 9999999999999TiB}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("error without problems: %T %v", err, err)
			}
			for _, p := range errs.List {
				if p.File != "fuzz.yaml" || p.Line < 1 || p.Msg == "" {
					t.Fatalf("problem without a place or a message: %#v", p)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		if bytes.Contains(data, []byte("<<")) {
			return // merges: the walker follows the YAML spec, yaml.v3 deep-merges
		}
		walked, _, prob := decode("fuzz.yaml", data)
		if prob != nil {
			t.Fatalf("decode failed where Parse succeeded: %v", prob)
		}
		var strict Config
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&strict); err != nil {
			if strings.Contains(err.Error(), "excessive aliasing") {
				return
			}
			t.Fatalf("accepted, but yaml.v3 strict decoding says: %v", err)
		}
		strict.Path, strict.hash = walked.Path, walked.hash
		if !reflect.DeepEqual(*walked, strict) {
			t.Fatalf("walker and yaml.v3 disagree:\nwalker: %+v\nyaml:   %+v", *walked, strict)
		}
	})
}
