package config

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		yaml    string
		want    ByteSize
		wantErr string
	}{
		{"1000", 1000, ""},
		{`"1000"`, 1000, ""},
		{"0", 0, ""},
		{"64KiB", 64 << 10, ""},
		{"256MiB", 256 << 20, ""},
		{"256 MiB", 256 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"10MB", 10_000_000, ""},
		{"10mb", 10_000_000, ""},
		{"5KB", 5000, ""},
		{"3GB", 3_000_000_000, ""},
		{"7B", 7, ""},
		{"1.5GiB", 0, `"1.5GiB" is not a size`},
		{"-1", 0, `"-1" is not a size`},
		{"MiB", 0, `"MiB" is not a size`},
		{"12 parsecs", 0, `"12 parsecs" is not a size`},
		{"99999999999TiB", 0, `"99999999999TiB" is too large`},
		{"[1]", 0, "expected a size (like 64KiB, 256MiB, 1GiB), got a list"},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
			t.Fatal(err)
		}
		var b ByteSize
		err := b.UnmarshalYAML(n.Content[0])
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.yaml, err)
		case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.yaml, err, tt.wantErr)
		case err == nil && b != tt.want:
			t.Errorf("%s = %d, want %d", tt.yaml, b, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tt := range []struct {
		b    ByteSize
		want string
	}{
		{0, "0"}, {1, "1"}, {1536, "1536"}, {1000, "1KB"}, {1024, "1KiB"},
		{256 << 20, "256MiB"}, {1 << 30, "1GiB"}, {10_000_000, "10MB"}, {3 << 40, "3TiB"},
	} {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.b), got, tt.want)
		}
		// What String prints, the parser reads back.
		back, err := ParseByteSize(tt.b.String())
		if err != nil || back != tt.b {
			t.Errorf("round trip of %d: %d, %v", int64(tt.b), back, err)
		}
		if tt.b.Int64() != int64(tt.b) {
			t.Errorf("Int64")
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{"500ms", 500 * time.Millisecond, ""},
		{"2s", 2 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"720h", 720 * time.Hour, ""},
		{`"10s"`, 10 * time.Second, ""},
		{"-1s", -time.Second, ""}, // negative is refused by the validator, with the field's rule
		{"0", 0, ""},
		{"5", 0, "5 has no unit (write it with one: 5s, 5ms or 5m)"},
		{"1.5", 0, "1.5 has no unit"},
		{"abc", 0, `"abc" is not a duration (like 500ms, 2s, 1m)`},
		{"10 s", 0, `"10 s" is not a duration`},
		{"{a: 1}", 0, "expected a duration (like 500ms, 2s, 1m), got a mapping"},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
			t.Fatal(err)
		}
		var d Duration
		err := d.UnmarshalYAML(n.Content[0])
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.yaml, err)
		case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.yaml, err, tt.wantErr)
		case err == nil && d.D() != tt.want:
			t.Errorf("%s = %s, want %s", tt.yaml, d, tt.want)
		}
	}
}

// TestMarshalRoundTrip checks that a config written back with yaml.v3
// reads back to the same values (a tool may print the effective config).
func TestMarshalRoundTrip(t *testing.T) {
	type both struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	in := both{D: Duration(90 * time.Second), B: 256 << 20}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "d: 1m30s\nb: 256MiB\n" {
		t.Errorf("marshalled %q", out)
	}
	var back both
	if err := yaml.Unmarshal(out, &back); err != nil || back != in {
		t.Errorf("read back %+v, %v", back, err)
	}
}
