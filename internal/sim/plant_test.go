package sim

import (
	"bytes"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"
	smodbus "github.com/simonvetter/modbus"
)

// fakeClock is a settable clock for PlantOptions.Clock.
type fakeClock struct{ ns atomic.Int64 }

var epoch = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) set(since time.Duration) { c.ns.Store(int64(since)) }

// startPlant serves a scripted plant on a free port with a fake clock at
// script time 0.
func startPlant(t *testing.T) (*Plant, *fakeClock) {
	t.Helper()
	clk := new(fakeClock)
	p := NewPlant(PlantOptions{Script: true, Clock: clk.now})
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p, clk
}

// rawClient is goburrow's client: it hands back the bytes of the reply
// unchanged, so tests can state the wire format.
func rawClient(t *testing.T, addr string, unit byte) gmodbus.Client {
	t.Helper()
	h := gmodbus.NewTCPClientHandler(addr)
	h.Timeout = 2 * time.Second
	h.SlaveId = unit
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return gmodbus.NewClient(h)
}

func TestPlantServesEncodedValues(t *testing.T) {
	p, _ := startPlant(t)
	if _, port, _ := net.SplitHostPort(p.Addr()); port == "0" || port == "" {
		t.Fatalf("Addr() = %q, want the real port", p.Addr())
	}
	set := map[string]float64{
		LT101:   18.625,  // 0x41950000
		LT102:   12.34,   // 0x414570A4
		TT101:   12,      // 12 mA = 12000 µA = 0x2EE0
		TT102:   2.5,     // broken wire: 2500 µA = 0x09C4
		PT101:   101.325, // 0x42CAA666
		PT102:   3.75,    // 0x40700000
		GT201:   48.5,    // 485 = 0x01E5
		GT202:   20,      // 200 = 0x00C8
		GT203:   0.04,    // rounds to 0
		LSHH101: 1,
		XV101:   0,
	}
	for tag, v := range set {
		if err := p.Set(tag, v); err != nil {
			t.Fatal(err)
		}
	}
	c := rawClient(t, p.Addr(), 1)

	holding := []struct {
		name string
		addr uint16
		want []byte
	}{
		{"LT-101 float32 CDAB: low word first", 0, []byte{0x00, 0x00, 0x41, 0x95}},
		{"LT-102 float32 CDAB", 2, []byte{0x70, 0xA4, 0x41, 0x45}},
		{"TT-101 uint16 µA", 10, []byte{0x2E, 0xE0}},
		{"TT-102 uint16 µA", 11, []byte{0x09, 0xC4}},
		{"PT-101 float32 ABCD: high word first", 20, []byte{0x42, 0xCA, 0xA6, 0x66}},
		{"PT-102 float32 ABCD", 22, []byte{0x40, 0x70, 0x00, 0x00}},
		{"unused register reads zero", 5, []byte{0x00, 0x00}},
	}
	for _, h := range holding {
		got, err := c.ReadHoldingRegisters(h.addr, uint16(len(h.want)/2))
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		if !bytes.Equal(got, h.want) {
			t.Errorf("%s: % X, want % X", h.name, got, h.want)
		}
	}
	// One request across the whole block, as a poller bridging gaps does.
	all, err := c.ReadHoldingRegisters(0, 24)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 48 || !bytes.Equal(all[0:4], []byte{0, 0, 0x41, 0x95}) || !bytes.Equal(all[40:44], []byte{0x42, 0xCA, 0xA6, 0x66}) {
		t.Errorf("block read 0..23: % X", all)
	}

	got, err := c.ReadInputRegisters(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x01, 0xE5, 0x00, 0xC8, 0x00, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("gas detectors: % X, want % X", got, want)
	}
	got, err = c.ReadDiscreteInputs(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{0x01}) {
		t.Errorf("LSHH-101: % X, want 01", got)
	}
	got, err = c.ReadCoils(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{0x00}) {
		t.Errorf("XV-101: % X, want 00", got)
	}
}

func TestPlantValveCoilIsWritable(t *testing.T) {
	p, _ := startPlant(t)
	c := rawClient(t, p.Addr(), 1)
	if _, err := c.WriteSingleCoil(0, 0x0000); err != nil { // close XV-101
		t.Fatal(err)
	}
	got, err := c.ReadCoils(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{0x00}) || p.Now()[XV101] != 0 {
		t.Fatalf("after closing XV-101: coil % X, plant %v", got, p.Now()[XV101])
	}
	// The command holds across script updates until released.
	time.Sleep(3 * updateEvery)
	if p.Now()[XV101] != 0 {
		t.Fatal("XV-101 reopened by itself")
	}
	p.Release(XV101)
	if p.Now()[XV101] != 1 {
		t.Fatal("XV-101 not back on the script after Release")
	}
}

func TestPlantExceptions(t *testing.T) {
	p, _ := startPlant(t)
	cases := []struct {
		name string
		unit byte
		call func(gmodbus.Client) ([]byte, error)
		code byte
	}{
		{"read past the holding image", 1, func(c gmodbus.Client) ([]byte, error) { return c.ReadHoldingRegisters(99, 2) }, 0x02},
		{"read past the input image", 1, func(c gmodbus.Client) ([]byte, error) { return c.ReadInputRegisters(100, 1) }, 0x02},
		{"read past the coils", 1, func(c gmodbus.Client) ([]byte, error) { return c.ReadCoils(10, 7) }, 0x02},
		{"write a measurement", 1, func(c gmodbus.Client) ([]byte, error) { return c.WriteSingleRegister(0, 1) }, 0x02},
		{"write a coil that is not an output", 1, func(c gmodbus.Client) ([]byte, error) { return c.WriteSingleCoil(1, 0xFF00) }, 0x02},
		{"unknown unit id", 7, func(c gmodbus.Client) ([]byte, error) { return c.ReadHoldingRegisters(0, 2) }, 0x0B},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call(rawClient(t, p.Addr(), tc.unit))
			var me *gmodbus.ModbusError
			if !errors.As(err, &me) || me.ExceptionCode != tc.code {
				t.Fatalf("got %v, want exception %#02x", err, tc.code)
			}
		})
	}
}

func TestPlantFollowsTheScriptClock(t *testing.T) {
	p, clk := startPlant(t)
	// simonvetter's client decodes independently of the register map.
	c, err := smodbus.NewClient(&smodbus.ClientConfiguration{URL: "tcp://" + p.Addr(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetEncoding(smodbus.BIG_ENDIAN, smodbus.LOW_WORD_FIRST); err != nil {
		t.Fatal(err)
	}

	// waitLevel polls until LT-101 is near want: the update goroutine runs
	// every 100 ms.
	waitLevel := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			v, err := c.ReadFloat32(0, smodbus.HOLDING_REGISTER)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(float64(v)-want) < 0.05 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("LT-101 = %.3f, want %.2f", v, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLevel(15)
	clk.set(18 * time.Second) // overfill, holding at the peak
	waitLevel(19)
	mA, err := c.ReadRegister(11, smodbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	clk.set(45 * time.Second) // broken wire on TT-102
	deadline := time.Now().Add(2 * time.Second)
	for mA >= 3800 {
		if time.Now().After(deadline) {
			t.Fatalf("TT-102 = %d µA at 45 s, want the broken wire", mA)
		}
		time.Sleep(20 * time.Millisecond)
		if mA, err = c.ReadRegister(11, smodbus.HOLDING_REGISTER); err != nil {
			t.Fatal(err)
		}
	}
	if mA < 2480 || mA > 2520 {
		t.Fatalf("TT-102 = %d µA, want about 2500", mA)
	}
	clk.set(Period + 1*time.Second) // the script repeats
	waitLevel(15)
}

func TestPlantConcurrentMasters(t *testing.T) {
	p, clk := startPlant(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := gmodbus.NewTCPClientHandler(p.Addr())
			h.Timeout = 2 * time.Second
			h.SlaveId = 1
			defer h.Close()
			c := gmodbus.NewClient(h)
			for j := 0; j < 50; j++ {
				if _, err := c.ReadHoldingRegisters(0, 24); err != nil {
					errs <- err
					return
				}
				if _, err := c.ReadInputRegisters(0, 3); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for j := 0; j < 50; j++ {
		clk.set(time.Duration(j) * time.Second)
		_ = p.Set(GT203, float64(j))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPlantStartAndClose(t *testing.T) {
	p := NewPlant(PlantOptions{})
	if err := p.Close(); err != nil { // before Start
		t.Fatal(err)
	}
	if err := p.Set("LT-999", 1); err == nil {
		t.Fatal("Set accepted an unknown tag")
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := p.Addr()
	// A second plant on the same address must fail, not steal it.
	q := NewPlant(PlantOptions{})
	if err := q.Start(addr); err == nil {
		q.Close()
		t.Fatal("second plant started on a busy address")
	}
	if err := p.Start("127.0.0.1:0"); err == nil {
		t.Fatal("Start twice succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("plant still accepts connections after Close")
	}
}
