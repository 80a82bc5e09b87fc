package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/gateway"
	"hazgate/internal/model"
)

func TestBufferTools(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, gateway.BufferFile)
	buf, err := buffer.Open(path, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	samples := []model.Sample{
		{Tag: "LT-101", Device: "plc", Value: 12.5, Time: now},
		{Tag: "GT-201", Device: "gas", Quality: model.Bad, Reason: "timeout", Time: now},
		{Tag: "LT-102", Device: "plc", Value: 3, Time: now},
	}
	events := []model.Event{{Kind: model.GatewayStarted, Time: now, Message: "started"}}
	if err := buf.Append(context.Background(), events, samples); err != nil {
		t.Fatal(err)
	}

	// While the gateway (here: this open buffer) holds the file, the tools
	// say so instead of reading a file that is being written.
	var out, errOut bytes.Buffer
	if code := cmdBuffer(context.Background(), []string{"stats", "--data", dir}, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "a gateway is running on it") {
		t.Fatalf("stats on a locked buffer: exit %d, stderr %q", code, errOut.String())
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	errOut.Reset()
	if code := cmdBuffer(context.Background(), []string{"stats", "--data", dir}, &out, &errOut); code != exitOK {
		t.Fatalf("stats: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"event 1 records waiting (seq 1..1)", "data  3 records waiting (seq 1..3), next seq 4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stats output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if code := cmdBuffer(context.Background(), []string{"dump", "--data", dir, "--from", "2"}, &out, &errOut); code != exitOK {
		t.Fatalf("dump: exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("dump --from 2 printed %d lines, want 2:\n%s", len(lines), out.String())
	}
	var first struct {
		Seq    uint64 `json:"seq"`
		Record struct {
			Tag, Reason string
		} `json:"record"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Seq != 2 || first.Record.Tag != "GT-201" || first.Record.Reason != "timeout" {
		t.Errorf("first dumped record %s (err %v), want seq 2 GT-201 timeout", lines[0], err)
	}

	if code := cmdBuffer(context.Background(), []string{"stats", "--data", t.TempDir()}, &out, &errOut); code != exitFailure {
		t.Errorf("stats on a directory without a buffer: exit %d, want %d", code, exitFailure)
	}
}
