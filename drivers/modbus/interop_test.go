package modbus

// Interop with independent Modbus peers (see internal/interop): a libmodbus
// server (scripts/interop/modbus/server.c, compiled here) on TCP and on a
// socat pty pair, and mbpoll reading the project's simulator.

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/interop"
	"hazgate/internal/model"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// buildLibmodbusServer compiles the C server into a temporary folder.
func buildLibmodbusServer(t *testing.T) string {
	t.Helper()
	interop.Require(t, "gcc", "pkg-config")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		if interop.Required() {
			t.Fatalf("pkg-config libmodbus: %v (install libmodbus-dev)", err)
		}
		t.Skipf("libmodbus-dev is not installed: %v", err)
	}
	src, err := filepath.Abs("../../scripts/interop/modbus/server.c")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mbserver")
	args := append([]string{src, "-o", bin}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts a peer and stops it (by its pid) at the end of the
// test. It returns a reader of the peer's stdout and of its stderr.
func startProcess(t testing.TB, dir string, name string, args ...string) (stdout, stderr *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return bufio.NewReader(out), bufio.NewReader(errOut)
}

// waitLine reads lines from r until one matches, for at most 10 s.
func waitLine(t testing.TB, r *bufio.Reader, re *regexp.Regexp) []string {
	t.Helper()
	found := make(chan []string, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if m := re.FindStringSubmatch(line); m != nil {
				found <- m
				_, _ = bufio.NewReader(r).WriteTo(discard{}) // keep the pipe drained
				return
			}
			if err != nil {
				close(found)
				return
			}
		}
	}()
	select {
	case m, ok := <-found:
		if !ok {
			t.Fatalf("peer ended before printing %v", re)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no line matching %v within 10 s", re)
	}
	return nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// ptyPair starts socat joining two ptys, a virtual RS-485 line, and
// returns their paths.
func ptyPair(t testing.TB) (a, b string) {
	t.Helper()
	interop.Require(t, "socat")
	dir := t.TempDir()
	a, b = filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	_, stderr := startProcess(t, dir, "socat", "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	waitLine(t, stderr, regexp.MustCompile(`starting data transfer loop`))
	return a, b
}

// libmodbusTags are the tags of the C server's map (fill in server.c) with
// the values slave k holds.
func libmodbusTags(prefix string, k float64) ([]config.Tag, map[string]float64) {
	f32 := func(v float64) float64 { return float64(float32(v)) }
	tags := []config.Tag{
		tag(prefix+"f-abcd", config.AreaHolding, 0, "float32", "ABCD"),
		tag(prefix+"f-cdab", config.AreaHolding, 2, "float32", "CDAB"),
		tag(prefix+"f-badc", config.AreaHolding, 4, "float32", "BADC"),
		tag(prefix+"f-dcba", config.AreaHolding, 6, "float32", "DCBA"),
		tag(prefix+"u16", config.AreaHolding, 8, "uint16", ""),
		tag(prefix+"i16", config.AreaHolding, 9, "int16", ""),
		tag(prefix+"i32", config.AreaHolding, 10, "int32", "ABCD"),
		tag(prefix+"u32", config.AreaHolding, 12, "uint32", "CDAB"),
		tag(prefix+"in0", config.AreaInput, 0, "uint16", ""),
		tag(prefix+"coil1", config.AreaCoil, 1, "bool", ""),
	}
	want := map[string]float64{
		prefix + "f-abcd": f32(18.625 * k), prefix + "f-cdab": f32(-2.5 * k),
		prefix + "f-badc": f32(float64(float32(101.325) * float32(k))), prefix + "f-dcba": f32(float64(float32(0.001) * float32(k))),
		prefix + "u16": 4321 * k, prefix + "i16": -1234 * k, prefix + "i32": -70000 * k,
		prefix + "u32": math.Floor(3e9 / k), prefix + "in0": 100 * k, prefix + "coil1": k - 1,
	}
	return tags, want
}

func checkValues(t *testing.T, what string, s []model.Sample, want map[string]float64) {
	t.Helper()
	for _, smp := range s {
		if smp.Quality != model.Good || smp.Value != want[smp.Tag] {
			t.Errorf("%s: %s = %v %v %q, want %v", what, smp.Tag, smp.Value, smp.Quality, smp.Reason, want[smp.Tag])
		}
	}
}

// hazgate's TCP driver reads every type and order from libmodbus and
// writes to it with read-back.
func TestInteropLibmodbusTCP(t *testing.T) {
	bin := buildLibmodbusServer(t)
	out, _ := startProcess(t, t.TempDir(), bin, "tcp")
	port := waitLine(t, out, regexp.MustCompile(`^port (\d+)`))[1]
	tags, want := libmodbusTags("", 1)
	sp := writable(tag("SP", config.AreaHolding, 20, "float32", "CDAB"))
	xv := writable(tag("XV", config.AreaCoil, 3, "bool", ""))
	d := newDriver(t, device(net.JoinHostPort("127.0.0.1", port), time.Second, append(tags, sp, xv)...))
	s, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, "libmodbus tcp", s[:len(tags)], want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Write(ctx, "SP", 12.75); err != nil {
		t.Fatalf("write to libmodbus: %v", err)
	}
	if err := d.Write(ctx, "XV", 1); err != nil {
		t.Fatalf("write coil to libmodbus: %v", err)
	}
	s, err = poll(t, d)
	if m := byTag(s); err != nil || m["SP"].Value != 12.75 || m["XV"].Value != 1 {
		t.Errorf("after writes: SP %+v XV %+v %v", m["SP"], m["XV"], err)
	}
}

// rtuSerialDevice is a device on the serial line at port.
func rtuSerialDevice(name, port string, unit int, timeout time.Duration, tags ...config.Tag) config.Device {
	d := device("", timeout, tags...)
	d.Name, d.Protocol, d.UnitID = name, config.ProtocolModbusRTU, unit
	d.Serial = &config.Serial{Port: port, Baud: 9600, DataBits: 8, Parity: "E", StopBits: 1}
	return d
}

// libmodbusLine is a virtual RS-485 line (a socat pty pair) with the
// libmodbus server's slaves 1 and 2 on one end. It returns the other end
// and the server's working folder (where mute-ID files silence a slave).
func libmodbusLine(t *testing.T) (port, dir string) {
	t.Helper()
	bin := buildLibmodbusServer(t)
	a, b := ptyPair(t)
	dir = t.TempDir()
	out, _ := startProcess(t, dir, bin, "rtu", b, "9600", "E")
	waitLine(t, out, regexp.MustCompile(`^ready`))
	return a, dir
}

// On a virtual RS-485 line (socat pty pair), hazgate's RTU driver reads
// two libmodbus slaves through one bus; a slave that stops answering does
// not stop the other, and comes back by itself.
func TestInteropLibmodbusRTU(t *testing.T) {
	a, dir := libmodbusLine(t)
	testTwoSlaves(t, a, dir, func(name string, unit int, timeout time.Duration, tags ...config.Tag) config.Device {
		return rtuSerialDevice(name, a, unit, timeout, tags...)
	})
}

// RTU over TCP: socat joins a TCP port to the pty, as a transparent
// serial-to-Ethernet converter would.
func TestInteropRTUOverTCPViaSocat(t *testing.T) {
	a, dir := libmodbusLine(t)
	_, stderr := startProcess(t, dir, "socat", "-d", "-d", "tcp-listen:0,bind=127.0.0.1,reuseaddr", "file:"+a+",raw,echo=0")
	port := waitLine(t, stderr, regexp.MustCompile(`listening on .*:(\d+)`))[1]
	addr := net.JoinHostPort("127.0.0.1", port)
	testTwoSlaves(t, addr, dir, func(name string, unit int, timeout time.Duration, tags ...config.Tag) config.Device {
		d := rtuDevice(name, addr, unit, timeout, tags...)
		d.Serial = &config.Serial{Baud: 9600, DataBits: 8, Parity: "E", StopBits: 1}
		return d
	})
}

func testTwoSlaves(t *testing.T, line, dir string, mk func(string, int, time.Duration, ...config.Tag) config.Device) {
	tags1, want1 := libmodbusTags("s1-", 1)
	tags2, want2 := libmodbusTags("s2-", 2)
	buses := NewBuses(nil)
	d1 := newRTU(t, buses, mk("slave-1", 1, 3*time.Second, tags1...))
	d2 := newRTU(t, buses, mk("slave-2", 2, time.Second, tags2...))
	if d1.Bus() != d2.Bus() {
		t.Fatalf("two devices on %s got two buses", line)
	}
	pollBoth := func(round string, dead bool) {
		var wg sync.WaitGroup
		wg.Go(func() {
			s, err := pollRTU(t, d1)
			if err != nil {
				t.Errorf("%s: slave 1: %v", round, err)
			}
			checkValues(t, round+" slave 1", s, want1)
		})
		wg.Go(func() {
			s, err := pollRTU(t, d2)
			if dead {
				if err == nil || s[0].Reason != model.ReasonTimeout {
					t.Errorf("%s: muted slave 2: %+v %v", round, s[0], err)
				}
				return
			}
			if err != nil {
				t.Errorf("%s: slave 2: %v", round, err)
			}
			checkValues(t, round+" slave 2", s, want2)
		})
		wg.Wait()
	}
	for i := range 3 {
		pollBoth(fmt.Sprint("round ", i), false)
	}
	mute := filepath.Join(dir, "mute-2")
	if err := os.WriteFile(mute, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		pollBoth(fmt.Sprint("muted round ", i), true)
	}
	if err := os.Remove(mute); err != nil {
		t.Fatal(err)
	}
	pollBoth("unmuted", false)
	if st := d2.Stats(); st.Timeouts != 3 {
		t.Errorf("slave 2 stats %+v, want 3 timeouts", st)
	}
	t.Logf("bus %s: %+v", d1.Bus(), d1.Bus().Stats())
}

// mbpoll, an independent Modbus master, reads the project's simulator and
// gets the values the simulator holds: it speaks standard Modbus TCP.
func TestInteropMbpollReadsSimulator(t *testing.T) {
	mbpoll := interop.Require(t, "mbpoll")[0]
	p := testkit.StartPlant(t, sim.PlantOptions{})
	for tg, v := range map[string]float64{sim.LT101: 18.625, sim.PT101: 101.325, sim.GT201: 48.5} {
		if err := p.Set(tg, v); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(p.Addr())
	read := func(args ...string) float64 {
		t.Helper()
		args = append([]string{"-m", "tcp", "-p", port, "-a", "1", "-1", "-0", "-o", "5"}, args...)
		out, err := exec.Command(mbpoll, append(args, "127.0.0.1")...).CombinedOutput()
		if err != nil {
			t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
		}
		m := regexp.MustCompile(`(?m)^\[\d+\]:\s+(\S+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("mbpoll %v printed no value:\n%s", args, out)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("mbpoll value %q: %v", m[1], err)
		}
		return v
	}
	// LT-101 is a float32 with the low word first (mbpoll's default),
	// PT-101 a float32 high word first (-B), GT-201 an input register.
	if v := read("-t", "4:float", "-r", "0"); math.Abs(v-18.625) > 1e-6 {
		t.Errorf("mbpoll LT-101 = %v, want 18.625", v)
	}
	if v := read("-t", "4:float", "-B", "-r", "20"); math.Abs(v-101.325) > 1e-3 {
		t.Errorf("mbpoll PT-101 = %v, want 101.325", v)
	}
	if v := read("-t", "3", "-r", "0"); v != 485 {
		t.Errorf("mbpoll GT-201 = %v, want 485 (48.5 %%LEL x10)", v)
	}
}

// A serial port that disappears (USB adapter unplugged, here the socat
// pair killed) fails the polls with a connection error, and the bus opens
// the port again by itself once it is back.
func TestSerialPortLossAndRecovery(t *testing.T) {
	socat := interop.Require(t, "socat")[0]
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	start := func() *exec.Cmd {
		cmd := exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitLine(t, bufio.NewReader(stderr), regexp.MustCompile(`starting data transfer loop`))
		return cmd
	}
	srv := modbustest.NewRTUServer(t, 5)
	srv.Slave(5).SetHolding(0, 55)
	cmd := start()
	go func() { _ = srv.ServeFile(b) }()

	d := newRTU(t, NewBuses(nil), rtuSerialDevice("d", a, 5, time.Second, tag("A", config.AreaHolding, 0, "uint16", "")))
	if s, err := pollRTU(t, d); err != nil || s[0].Value != 55 {
		t.Fatalf("first poll: %+v %v", s, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s, err := pollRTU(t, d)
	if err == nil || s[0].Quality != model.Bad || !strings.HasPrefix(s[0].Reason, model.ReasonConnection) {
		t.Fatalf("poll with the port gone: %+v %v", s, err)
	}
	start()
	go func() { _ = srv.ServeFile(b) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err = pollRTU(t, d)
		if err == nil && s[0].Value == 55 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 10 s: %+v %v", s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := d.Bus().Stats(); st.Reconnects < 1 {
		t.Errorf("bus stats %+v, want a reconnect", st)
	}
}
