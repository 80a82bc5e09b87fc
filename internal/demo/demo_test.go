package demo

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

// TestDemoShowsOverfillAndGasAlarms runs the whole demo (plant, broker,
// gateway) on free ports until the scripted LT-101 HH alarm (about 15 s in)
// and the GT-201 first gas alarm (about 15.5 s) have arrived at the broker.
func TestDemoShowsOverfillAndGasAlarms(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for about 20 s")
	}
	out := new(testkit.SyncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{MQTTListen: "127.0.0.1:0", PlantListen: "127.0.0.1:0", For: 45 * time.Second, Out: out})
	}()

	hh := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  ALARM  HH +LT-101 +T-101 level 1[89]\.\d+ m >= 18\.5 m .*\[seq \d+\]$`)
	gas := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  ALARM  H +GT-201 .* >= 20 %LEL, first gas alarm .*\[seq \d+\]$`)
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("no LT-101 HH alarm and GT-201 first gas alarm within 30 s:\n%s", out)
		case <-time.After(100 * time.Millisecond):
			s := out.String()
			if hh.MatchString(s) && gas.MatchString(s) {
				break wait
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo returned %v after Ctrl-C", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("demo did not stop within 15 s of cancel:\n%s", out)
	}

	s := out.String()
	t.Logf("demo output:\n%s", s)
	for _, want := range []string{
		"hazgate demo: Modbus sim at 127.0.0.1:",
		"mosquitto_sub -h 127.0.0.1 -p ",
		"Ctrl-C",
		"STATE  ONLINE  demo-gw-01",
		"START         demo-gw-01",
		"ALARM  H      LT-101", // H comes before HH
		"summary: ",
		"STOP          demo-gw-01", // the orderly stop reached the broker before it closed
		"hazgate demo stopped.",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`summary: (\d+) samples in (\d+) messages`).FindStringSubmatch(s); m == nil || m[1] == "0" {
		t.Errorf("no samples reached the broker: %v", m)
	}
	// The temporary data directory is gone.
	m := regexp.MustCompile(`buffer: +(\S+)/buffer\.db \(temporary`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("banner does not name the temporary buffer")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s still there: %v", m[1], err)
	}
}

func TestDemoForStopsByItself(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 2 s")
	}
	out := new(testkit.SyncBuffer)
	dir := t.TempDir()
	// A demo that ignored For would run until this outer limit. Start-up
	// (two simulators, the broker, the buffer) and shutdown take seconds
	// under the race detector on a loaded CI machine (13.7 s seen), so the
	// bound only tells "stopped by itself" from "was stopped".
	const outer = 60 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), outer)
	defer cancel()
	start := time.Now()
	err := Run(ctx, Options{MQTTListen: "127.0.0.1:0", PlantListen: "127.0.0.1:0", For: 2 * time.Second, DataDir: dir, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second || d >= outer-5*time.Second {
		t.Errorf("For 2s ran %v", d)
	}
	// A data directory given by the caller is kept, with the buffer in it.
	if _, err := os.Stat(dir + "/buffer.db"); err != nil {
		t.Errorf("buffer not in the given data directory: %v", err)
	}
	if !strings.Contains(out.String(), "stops by itself after 2s") {
		t.Errorf("banner does not say when it stops:\n%s", out)
	}
}

func TestDemoExplicitBusyAddressFails(t *testing.T) {
	// An address asked for explicitly must not be silently replaced.
	out := new(testkit.SyncBuffer)
	first := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		first <- Run(ctx, Options{MQTTListen: "127.0.0.1:0", PlantListen: "127.0.0.1:0", Out: out})
	}()
	re := regexp.MustCompile(`Modbus sim at (127\.0\.0\.1:\d+)`)
	var plantAddr string
	for deadline := time.Now().Add(10 * time.Second); plantAddr == ""; {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			plantAddr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("demo did not start:\n%s", out)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	err := Run(context.Background(), Options{MQTTListen: "127.0.0.1:0", PlantListen: plantAddr, Out: new(testkit.SyncBuffer)})
	if err == nil || !strings.Contains(err.Error(), "simulated plant") {
		t.Errorf("second demo on the busy plant address %s: %v", plantAddr, err)
	}
	cancel()
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("first demo did not stop")
	}
}

func TestStartOrFallback(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var got net.Listener
	listen := func(addr string) error {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			got = l
		}
		return err
	}
	// Asked for explicitly: the busy address is an error.
	if err := startOrFallback(busy.Addr().String(), false, listen); err == nil {
		got.Close()
		t.Fatal("explicit busy address accepted")
	}
	// The default address: a free port on the same host instead.
	if err := startOrFallback(busy.Addr().String(), true, listen); err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Addr().String() == busy.Addr().String() || !strings.HasPrefix(got.Addr().String(), "127.0.0.1:") {
		t.Fatalf("fallback listens on %s", got.Addr())
	}
	// Other errors are not papered over.
	if err := startOrFallback("127.0.0.1:99999", true, listen); err == nil {
		t.Fatal("invalid port accepted")
	}
}
