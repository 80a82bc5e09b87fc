package sim

import (
	"math"
	"net"
	"testing"
	"time"

	"hazgate/configs"
	"hazgate/internal/config"
)

// TestReactorScriptMatchesDemo: the reactor's exotherm crosses the
// thresholds configs/demo.yaml sets on R-301 at the times the script's
// comment gives, and is quiet outside the incident.
func TestReactorScriptMatchesDemo(t *testing.T) {
	cfg, err := config.Parse("configs/demo.yaml", configs.DemoYAML())
	if err != nil {
		t.Fatal(err)
	}
	var tags map[string]config.Tag
	for _, d := range cfg.Devices {
		if d.Protocol == config.ProtocolOPCUA {
			tags = map[string]config.Tag{}
			for _, tg := range d.Tags {
				tags[tg.Name] = tg
				if _, err := config.ParseNodeID(tg.Node); err != nil || tg.Node != ReactorNode(tg.Name) {
					t.Errorf("demo.yaml tag %s reads node %q, the reactor serves it at %q", tg.Name, tg.Node, ReactorNode(tg.Name))
				}
			}
		}
	}
	if tags == nil {
		t.Fatal("demo.yaml has no opcua device")
	}
	crossing := func(limit float64, value func(ReactorValues) float64) time.Duration {
		for at := time.Duration(0); at < Period; at += 100 * time.Millisecond {
			if value(reactorAt(at, true)) >= limit {
				return at
			}
		}
		return -1
	}
	temp := func(v ReactorValues) float64 { return v.Temperature }
	press := func(v ReactorValues) float64 { return v.Pressure }
	tt := tags["TT-301"].Alarms
	for _, c := range []struct {
		name  string
		limit float64
		value func(ReactorValues) float64
		want  time.Duration
	}{
		{"TT-301 h", *tt.H, temp, 67100 * time.Millisecond},
		{"TT-301 hh", *tt.HH, temp, 74300 * time.Millisecond},
		{"PT-301 h", *tags["PT-301"].Alarms.H, press, 70700 * time.Millisecond},
		{"PT-301 hh", *tags["PT-301"].Alarms.HH, press, 74300 * time.Millisecond},
	} {
		got := crossing(c.limit, c.value)
		if got < 0 || math.Abs(float64(got-c.want)) > float64(300*time.Millisecond) {
			t.Errorf("%s (%v) crossed at %v, want about %v", c.name, c.limit, got, c.want)
		}
	}
	if v := reactorAt(30*time.Second, true); !v.Agitator || v.Temperature > 81 {
		t.Errorf("at 30 s the reactor is %+v, want steady", v)
	}
	if v := reactorAt(65*time.Second, true); v.Agitator {
		t.Errorf("at 65 s the agitator runs, want tripped")
	}
	if v := reactorAt(65*time.Second, false); !v.Agitator || v.Temperature > 81 {
		t.Errorf("without the script at 65 s the reactor is %+v, want steady", v)
	}
}

// TestReactorRestartSamePort: Close frees the port and Start serves again
// on it; a connection open across the Close is dropped at once.
func TestReactorRestartSamePort(t *testing.T) {
	r := NewReactor(ReactorOptions{})
	if err := r.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	addr := r.Addr()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("a client connection survived Close: %v", err)
	}
	if err := r.Start(addr); err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	if r.Addr() != addr || r.Endpoint() != "opc.tcp://"+addr {
		t.Errorf("restarted on %s (%s), want %s", r.Addr(), r.Endpoint(), addr)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
