package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/history"
	"hazgate/internal/model"
	"hazgate/internal/web"
)

var histT0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func writeHistory(t *testing.T, dir string) (*history.Store, []model.Sample) {
	t.Helper()
	st, err := history.Open(filepath.Join(dir, history.File), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var in []model.Sample
	for i := range 200 {
		tm := histT0.Add(time.Duration(i) * 30 * time.Second)
		in = append(in,
			model.Sample{Tag: "LT-101", Value: 10 + float64(i)/7, Time: tm},
			model.Sample{Tag: "GT-201", Quality: model.Bad, Reason: model.ReasonTimeout, Time: tm})
	}
	if err := st.Write(in); err != nil {
		t.Fatal(err)
	}
	var want []model.Sample
	for _, s := range in {
		if s.Tag == "LT-101" && !s.Time.Before(histT0.Add(time.Hour)) && s.Time.Before(histT0.Add(90*time.Minute)) {
			want = append(want, s)
		}
	}
	return st, want
}

func checkCSV(t *testing.T, out string, want []model.Sample) {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want)+1 || strings.Join(rows[0], ",") != strings.Join(history.CSVHeader, ",") {
		t.Fatalf("%d rows for %d samples:\n%s", len(rows), len(want), out)
	}
	for i, row := range rows[1:] {
		tm, err := time.Parse(time.RFC3339Nano, row[0])
		v, verr := strconv.ParseFloat(row[2], 64)
		if err != nil || verr != nil || !tm.Equal(want[i].Time) || row[1] != want[i].Tag || v != want[i].Value || row[3] != "good" {
			t.Fatalf("row %d %v, wrote %+v", i, row, want[i])
		}
	}
}

// TestHistoryExportStopped: with the gateway stopped the command reads
// the file itself, and the CSV it writes parses back to what was stored.
func TestHistoryExportStopped(t *testing.T) {
	dir := t.TempDir()
	st, want := writeHistory(t, dir)

	// the file is held (a running gateway, no config to find its page)
	var out, errOut bytes.Buffer
	args := []string{"export", "--data", dir, "--tag", "LT-101", "--from", "2026-12-01T01:00:00Z", "--to", "2026-12-01T01:30:00Z"}
	if code := cmdHistory(context.Background(), args, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "a gateway is running on it") {
		t.Fatalf("export of a held file: exit %d, %q", code, errOut.String())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	errOut.Reset()
	if code := cmdHistory(context.Background(), args, &out, &errOut); code != exitOK {
		t.Fatalf("export: exit %d: %s", code, errOut.String())
	}
	checkCSV(t, out.String(), want)
	if !strings.Contains(errOut.String(), "60 records of LT-101") {
		t.Errorf("summary %q", errOut.String())
	}

	file := filepath.Join(t.TempDir(), "lt101.json")
	if code := cmdHistory(context.Background(), append(args, "--format", "json", "-o", file), &out, &errOut); code != exitOK {
		t.Fatalf("json export: %s", errOut.String())
	}
	if b, err := os.ReadFile(file); err != nil || strings.Count(string(b), `"tag":"LT-101"`) != 60 {
		t.Fatalf("json file: %v\n%s", err, b)
	}

	out.Reset()
	if code := cmdHistory(context.Background(), []string{"stats", "--data-dir", dir}, &out, &errOut); code != exitOK ||
		!strings.Contains(out.String(), "400 raw samples") || !strings.Contains(out.String(), "2026-12-01T00:00:00Z .. 2026-12-01T01:39:30Z") {
		t.Fatalf("stats: %s%s", out.String(), errOut.String())
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--data", dir, "--from", "2026-12-01"}, "--tag is required"},
		{[]string{"export", "--data", dir, "--tag", "A"}, "--from is required"},
		{[]string{"export", "--data", dir, "--tag", "A", "--from", "yesterday"}, "is not an RFC 3339 time"},
		{[]string{"export", "--data", dir, "--tag", "A", "--from", "2026-12-02", "--to", "2026-12-01"}, "is not before"},
		{[]string{"export", "--data", dir, "--tag", "A", "--from", "2026-12-01", "--format", "xls"}, "not csv or json"},
		{[]string{"import"}, "usage:"},
	} {
		errOut.Reset()
		if code := cmdHistory(context.Background(), bad.args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), bad.want) {
			t.Errorf("%v: exit %d, %q, want %q", bad.args, code, errOut.String(), bad.want)
		}
	}
}

// TestHistoryExportRunning: while the gateway holds the file, the command
// given the config fetches the export from the gateway's status page
// (with its password) and writes the same CSV.
func TestHistoryExportRunning(t *testing.T) {
	dir := t.TempDir()
	st, want := writeHistory(t, dir)
	defer st.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pw := filepath.Join(dir, "web.pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "plant.yaml")
	yaml := fmt.Sprintf(`gateway: {id: gw1, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [tcp://127.0.0.1:1883]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags: [{name: LT-101, kind: count, area: input, address: 0}]
web: {listen: %q, password_file: %q}
`, dir, addr, pw)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Options{Config: cfg.Web, Source: func() web.Snapshot { return web.Snapshot{} }, History: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("status page did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var out, errOut bytes.Buffer
	args := []string{"export", "-c", cfgPath, "--tag", "LT-101", "--from", "2026-12-01T01:00:00Z", "--to", "2026-12-01T01:30:00Z"}
	if code := cmdHistory(context.Background(), args, &out, &errOut); code != exitOK {
		t.Fatalf("export from the running gateway: exit %d: %s", code, errOut.String())
	}
	checkCSV(t, out.String(), want)
	if !strings.Contains(errOut.String(), "from the running gateway at "+addr) {
		t.Errorf("summary %q", errOut.String())
	}

	// a wrong password is reported with the server's answer
	if err := os.WriteFile(pw, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := cmdHistory(context.Background(), args, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "401") {
		t.Fatalf("wrong password: exit %d, %q", code, errOut.String())
	}
}
