package modbus

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// registerValue is what the raw test devices hold in register a: distinct
// for every register, so a reply taken for the wrong request shows.
func registerValue(a uint16) uint16 { return 1000 + a }

// LATE REPLY (goburrow issue #64): the device answers one request only
// after the driver's timeout. The late reply must never be taken for the
// answer to a later request: every good sample carries its own register's
// value, the slow request's tags are bad "timeout", and the next poll is
// good again.
func TestLateReplyNeverAnswersAnotherRequest(t *testing.T) {
	const timeout = 200 * time.Millisecond
	var slowAddr atomic.Int32 // register whose next read is answered late; -1: none
	slowAddr.Store(-1)
	srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
		if int32(req.Address()) == slowAddr.Load() {
			slowAddr.Store(-1)
			time.Sleep(2 * timeout)
		}
		vals := make([]uint16, req.Quantity())
		for i := range vals {
			vals[i] = registerValue(req.Address() + uint16(i))
		}
		_, _ = c.Write(req.Registers(vals...)) // the driver may have gone
		return nil
	})
	addrs := []int{0, 20, 40, 60} // max_gap 8: one request each
	var tags []config.Tag
	for _, a := range addrs {
		tags = append(tags, tag("R"+itoa(a), config.AreaHolding, a, "uint16", ""))
	}
	d := newDriver(t, device(srv.Addr, timeout, tags...))
	if len(d.Requests()) != len(addrs) {
		t.Fatalf("plan %+v, want one request per tag", d.Requests())
	}

	// polls 3, 7, 11, 15, 19 are slowed at registers 20, 0, 60, 40, 20
	slowAt := map[int]int{3: 20, 7: 0, 11: 60, 15: 40, 19: 20}
	good := 0
	for i := range 24 {
		slow, isSlow := slowAt[i]
		if isSlow {
			slowAddr.Store(int32(slow))
		}
		start := time.Now()
		samples, err := poll(t, d)
		took := time.Since(start)
		for j, s := range samples {
			if s.Quality == model.Good {
				good++
				if want := float64(registerValue(uint16(addrs[j]))); s.Value != want {
					t.Fatalf("poll %d: %s = %v, but its register holds %v: a reply was taken for another request", i, s.Tag, s.Value, want)
				}
			}
		}
		if !isSlow {
			if err != nil {
				t.Fatalf("poll %d (after a slow one: %v): %v", i, i > 0 && slowAt[i-1] != 0, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("poll %d: slow device, no error", i)
		}
		if took > timeout+300*time.Millisecond {
			t.Errorf("poll %d took %v", i, took)
		}
		for j, s := range samples {
			wantBad := addrs[j] >= slow // the slow request and every one after it
			if wantBad && (s.Quality != model.Bad || s.Reason != model.ReasonTimeout) {
				t.Errorf("poll %d: %s %v %q, want bad timeout", i, s.Tag, s.Quality, s.Reason)
			}
			if !wantBad && s.Quality != model.Good {
				t.Errorf("poll %d: %s %v %q, want good (read before the slow request)", i, s.Tag, s.Quality, s.Reason)
			}
		}
	}
	if good < 19*len(addrs) {
		t.Errorf("only %d good samples", good)
	}
	st := d.Stats()
	if st.Timeouts != 5 || st.Reconnects != 5 {
		t.Errorf("stats %+v: want 5 timeouts and 5 reconnects", st)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A device that misbehaves in one of many ways, then behaves: its tags are
// bad with a reason, nothing panics, and the next poll is good.
func TestMisbehavingDevice(t *testing.T) {
	type answer func(c net.Conn, req modbustest.Request) error
	regs := func(req modbustest.Request) []uint16 {
		v := make([]uint16, req.Quantity())
		for i := range v {
			v[i] = registerValue(req.Address() + uint16(i))
		}
		return v
	}
	write := func(c net.Conn, b []byte) error { _, err := c.Write(b); return err }
	cases := []struct {
		name      string
		misbehave answer
		// reasons for tags A (register 0), B (register 1) and C (register 100)
		reasonA, reasonB, reasonC string
		wantErr                   bool
	}{
		{"garbage instead of a frame",
			func(c net.Conn, req modbustest.Request) error {
				return write(c, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			},
			"connection error: invalid response: malformed frame: protocol id 21584, want 0", "=A", "", true},
		{"header length 0",
			func(c net.Conn, req modbustest.Request) error {
				return write(c, []byte{byte(req.TxID >> 8), byte(req.TxID), 0, 0, 0, 0, 1})
			},
			"connection error: invalid response: malformed frame: length 0 outside 2..254", "=A", "", true},
		{"header length 600",
			func(c net.Conn, req modbustest.Request) error {
				return write(c, []byte{byte(req.TxID >> 8), byte(req.TxID), 0, 0, 0x02, 0x58, 1, 3})
			},
			"connection error: invalid response: malformed frame: length 600 outside 2..254", "=A", "", true},
		{"frame cut short, connection closed",
			func(c net.Conn, req modbustest.Request) error {
				f := req.Registers(regs(req)...)
				_ = write(c, f[:len(f)-3])
				return modbustest.ErrClose
			},
			"connection error: closed by device during receive", "=A", "=A", true},
		{"fewer registers than asked",
			func(c net.Conn, req modbustest.Request) error {
				return write(c, req.Registers(regs(req)[:req.Quantity()-1]...))
			},
			"", "decode error: short response", "", true},
		{"more registers than asked",
			func(c net.Conn, req modbustest.Request) error {
				return write(c, req.Registers(append(regs(req), 7)...))
			},
			"connection error: invalid response: 6 bytes for 4 bytes asked", "=A", "", true},
		{"byte count disagrees with the data",
			func(c net.Conn, req modbustest.Request) error {
				f := req.Registers(regs(req)...)
				f[8]-- // byte count
				return write(c, f)
			},
			"connection error: invalid response: response data size '4' does not match count '3'", "=A", "", true},
		{"wrong transaction id",
			func(c net.Conn, req modbustest.Request) error {
				req.TxID += 100
				return write(c, req.Registers(regs(req)...))
			},
			model.ReasonTransactionMismatch, "=A", "", true},
		{"wrong unit id",
			func(c net.Conn, req modbustest.Request) error {
				req.Unit = 9
				return write(c, req.Registers(regs(req)...))
			},
			"connection error: invalid response: response unit id '9' does not match request '1'", "=A", "", true},
		{"wrong function code",
			func(c net.Conn, req modbustest.Request) error {
				req.Function = 4
				return write(c, req.Registers(regs(req)...))
			},
			"connection error: invalid response: function code 4", "=A", "", true},
		{"exception for another function",
			func(c net.Conn, req modbustest.Request) error {
				req.Function = 4
				return write(c, req.Exception(2))
			},
			"connection error: invalid response: function code 132", "=A", "", true},
		{"exception 4",
			func(c net.Conn, req modbustest.Request) error { return write(c, req.Exception(4)) },
			"exception: 4 (server device failure)", "=A", "", false},
		{"reset without answer",
			func(c net.Conn, req modbustest.Request) error { return modbustest.ErrClose },
			"connection error: closed by device during receive", "=A", "=A", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var bad atomic.Bool
			srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
				if req.Address() == 0 && bad.Load() {
					return tc.misbehave(c, req)
				}
				return write(c, req.Registers(regs(req)...))
			})
			d := newDriver(t, device(srv.Addr, 300*time.Millisecond,
				tag("A", config.AreaHolding, 0, "uint16", ""),
				tag("B", config.AreaHolding, 1, "uint16", ""),
				tag("C", config.AreaHolding, 100, "uint16", ""),
			))
			check := func(when string, wantReasons []string, wantErr bool) {
				t.Helper()
				samples, err := poll(t, d)
				if (err != nil) != wantErr {
					t.Errorf("%s: err = %v, want error %v", when, err, wantErr)
				}
				for i, s := range samples {
					want := wantReasons[i]
					if want == "=A" {
						want = wantReasons[0]
					}
					if s.Reason != want || (want == "") != (s.Quality == model.Good) {
						t.Errorf("%s: %s = %v %v %q, want reason %q", when, s.Tag, s.Value, s.Quality, s.Reason, want)
					}
					if s.Quality == model.Good && s.Value != float64(registerValue(uint16([]int{0, 1, 100}[i]))) {
						t.Errorf("%s: %s = %v: another register's value", when, s.Tag, s.Value)
					}
				}
			}
			check("before", []string{"", "", ""}, false)
			bad.Store(true)
			for i := range 2 {
				check("misbehaving "+itoa(i), []string{tc.reasonA, tc.reasonB, tc.reasonC}, tc.wantErr)
			}
			bad.Store(false)
			check("after", []string{"", "", ""}, false)
		})
	}
}

// A device that closes the connection after every answer (an aggressive
// idle timeout) costs no poll: the read is retried once on a new
// connection.
func TestIdleCloseIsRetried(t *testing.T) {
	srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
		_, _ = c.Write(req.Registers(registerValue(req.Address())))
		return modbustest.ErrClose
	})
	d := newDriver(t, device(srv.Addr, time.Second, tag("A", config.AreaHolding, 5, "uint16", "")))
	for i := range 5 {
		time.Sleep(20 * time.Millisecond) // let the close arrive
		s, err := poll(t, d)
		if err != nil || s[0].Quality != model.Good || s[0].Value != 1005 {
			t.Fatalf("poll %d: %+v %v", i, s, err)
		}
	}
	if n := srv.Connections(); n != 5 {
		t.Errorf("%d connections, want 5", n)
	}
}
