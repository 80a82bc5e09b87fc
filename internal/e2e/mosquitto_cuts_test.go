package e2e

import (
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/internal/watch"
)

// cutter is a TCP relay that can cut every connection through it at once,
// with a reset, as a failing radio link or a NAT timeout would.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	since  time.Time // when the newest connection was accepted
	wg     sync.WaitGroup
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		c.cut()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", c.target, 2*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, in, out)
		c.since = time.Now()
		c.mu.Unlock()
		c.wg.Add(2)
		go c.pipe(in, out)
		go c.pipe(out, in)
	}
}

func (c *cutter) pipe(dst, src net.Conn) {
	defer c.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
}

// up reports whether a connection is open and for how long.
func (c *cutter) up() (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns) > 0, time.Since(c.since)
}

// cut resets every open connection.
func (c *cutter) cut() {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, nc := range conns {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = nc.Close()
	}
}

// TestMosquittoConnectionCuts cuts the link between the gateway and
// Mosquitto at random moments, at least 50 times, while the plant runs.
// The platform (`hazgate watch`, connected to Mosquitto directly) must see
// every sequence number of both streams; duplicates are allowed (what was
// in flight at a cut is sent again), gaps are not.
func TestMosquittoConnectionCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about half a minute")
	}
	dir := t.TempDir()
	mq := testkit.StartMosquitto(t, dir, "allow_anonymous true")
	w := startWatcher(t, watch.Options{Broker: "tcp://" + mq.Addr, Gateway: "demo-gw-01"})
	link := startCutter(t, mq.Addr)
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: true})
	s := string(testkit.DemoConfigYAML(t, plant.Addr(), "tcp://"+link.ln.Addr().String(), filepath.Join(dir, "data")))
	const anchor = "  topic_prefix: hazgate\n"
	if !strings.Contains(s, anchor) {
		t.Fatalf("configs/demo.yaml no longer contains %q; update this test", anchor)
	}
	s = strings.Replace(s, anchor, anchor+"  reconnect_max: 500ms\n  keepalive: 5s\n  connect_timeout: 2s\n", 1)
	g, stop := runGateway(t, loadConfig(t, []byte(s)))

	const wantCuts = 50
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	cuts := 0
	deadline := time.Now().Add(90 * time.Second)
	for cuts < wantCuts && time.Now().Before(deadline) {
		// Cut after the connection has been up for 50..400 ms: sometimes
		// right after the birth, sometimes with a full window in flight.
		after := time.Duration(50+rng.IntN(350)) * time.Millisecond
		if ok, d := link.up(); ok && d >= after {
			link.cut()
			cuts++
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cuts < wantCuts {
		t.Fatalf("only %d cuts in 90 s", cuts)
	}
	// Let the backlog drain through a link left alone, then stop in order.
	acquired := g.Status().Buffer.Data.NextSeq - 1
	waitFor(t, 30*time.Second, "the backlog after the last cut, and more", func() bool {
		return w.c.Counts().Samples >= acquired+50 && g.Status().Connected
	})
	stop()
	w.waitOutput(t, 10*time.Second, "offline (shutdown)")
	r := w.finish(t)
	t.Logf("%d cuts: %d samples, %d events, %d duplicates, %d messages", cuts, r.Samples, r.Events, r.Duplicates, r.Messages)
	// Duplicates are what was in flight at a cut plus the acknowledged
	// tail sent again (uplink/recent.go): at most two windows of messages
	// of batch_max samples each per cut.
	if limit := uint64(cuts * 2 * 32 * 100); r.Duplicates > limit {
		t.Errorf("%d duplicates after %d cuts: more than what can be in flight or resent (%d)", r.Duplicates, cuts, limit)
	}
}
