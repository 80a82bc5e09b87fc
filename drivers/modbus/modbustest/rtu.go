package modbustest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	smb "github.com/simonvetter/modbus"

	"hazgate/drivers/modbus/rtuframe"
)

// RTUServer is a line of Modbus RTU slaves, each with the memory of a
// Server (set and read it through Slave). It serves RTU frames over TCP on
// 127.0.0.1, as a transparent serial-to-Ethernet converter with its slaves
// behind it would, and over any byte stream with Serve (one end of a pty
// pair: a virtual RS-485 line).
//
// A slave can be muted (it stops answering, as a dead one) and made to
// answer with a bad CRC (noise on the line).
type RTUServer struct {
	// Addr is host:port of the TCP side.
	Addr string

	mu       sync.Mutex
	slaves   map[byte]*Server
	mute     map[byte]bool
	corrupt  map[byte]int // answers still to corrupt
	requests map[byte]int
	char     time.Duration // one character on the simulated line; 0: no pacing
	hangUp   bool          // close a TCP connection after each answer
	conns    int           // TCP connections accepted
	ln       net.Listener
	wg       sync.WaitGroup
	open     map[io.Closer]struct{}
}

// NewRTUServer starts a line with the given slave addresses, listening on a
// free port of 127.0.0.1. Stopped by t.Cleanup.
func NewRTUServer(t testing.TB, units ...byte) *RTUServer {
	t.Helper()
	s := &RTUServer{slaves: map[byte]*Server{}, mute: map[byte]bool{}, corrupt: map[byte]int{}, requests: map[byte]int{}, open: map[io.Closer]struct{}{}}
	for _, u := range units {
		s.slaves[u] = newStore()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("modbustest: listen: %v", err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !s.track(c) {
				_ = c.Close()
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			s.wg.Go(func() {
				defer s.untrack(c)
				_ = s.Serve(c)
			})
		}
	})
	t.Cleanup(s.Stop)
	return s
}

func (s *RTUServer) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *RTUServer) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
	_ = c.Close()
}

// Stop closes the listener and every connection and waits for them.
func (s *RTUServer) Stop() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.open = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// Slave is the memory of one slave (nil if the line has no such slave).
func (s *RTUServer) Slave(unit byte) *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slaves[unit]
}

// SetMute makes a slave stop answering (true) or answer again.
func (s *RTUServer) SetMute(unit byte, mute bool) {
	s.mu.Lock()
	s.mute[unit] = mute
	s.mu.Unlock()
}

// CorruptNext makes the next n answers of a slave carry a wrong CRC.
func (s *RTUServer) CorruptNext(unit byte, n int) {
	s.mu.Lock()
	s.corrupt[unit] = n
	s.mu.Unlock()
}

// SetCharTime paces the line: every answer is sent only after the time
// its request and the answer itself would take on a serial line with that
// character time (11 bits at the baud rate: 1.146 ms at 9600 8E1), so a
// byte stream behaves like a line at that baud rate. 0 turns pacing off.
func (s *RTUServer) SetCharTime(d time.Duration) {
	s.mu.Lock()
	s.char = d
	s.mu.Unlock()
}

// SetHangUp makes the converter close a TCP connection after each answer
// (an aggressive idle timeout).
func (s *RTUServer) SetHangUp(on bool) {
	s.mu.Lock()
	s.hangUp = on
	s.mu.Unlock()
}

// Connections counts the TCP connections accepted so far.
func (s *RTUServer) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Requests counts the intact requests addressed to a slave, answered or not.
func (s *RTUServer) Requests(unit byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[unit]
}

// deadliner is a stream whose reads can be bounded (net.Conn, *os.File of
// a pty).
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// ServeFile serves the line on a serial device or pty (opened here, so
// that its reads can be interrupted) until Stop. Tests run it in a
// goroutine.
func (s *RTUServer) ServeFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if !s.track(f) {
		_ = f.Close()
		return errors.New("modbustest: server stopped")
	}
	defer s.untrack(f)
	return s.Serve(f)
}

// Serve answers the requests read from rw until it fails (closed). Frames
// addressed to other slaves, to muted slaves and frames with a bad CRC get
// no answer, as on a real line.
func (s *RTUServer) Serve(rw io.ReadWriter) error {
	head := make([]byte, rtuframe.RequestHeadSize)
	for {
		if _, err := io.ReadFull(rw, head[:2]); err != nil {
			return err
		}
		n, err := rtuframe.RequestLength(head[:2])
		if errors.Is(err, rtuframe.ErrUnknownFunction) {
			s.resync(rw)
			continue
		}
		if head[1] == 15 || head[1] == 16 {
			if _, err := io.ReadFull(rw, head[2:]); err != nil {
				return err
			}
			if n, err = rtuframe.RequestLength(head); err != nil {
				s.resync(rw)
				continue
			}
		}
		frame := make([]byte, n)
		have := copy(frame, head[:min(len(head), n)])
		if head[1] != 15 && head[1] != 16 {
			have = 2
		}
		if _, err := io.ReadFull(rw, frame[have:]); err != nil {
			return err
		}
		if rtuframe.Check(frame) != nil {
			s.resync(rw)
			continue
		}
		answer := s.answer(frame)
		if answer == nil {
			continue
		}
		s.mu.Lock()
		char, hangUp := s.char, s.hangUp
		s.mu.Unlock()
		if char > 0 {
			time.Sleep(time.Duration(len(frame)+len(answer)) * char)
		}
		if _, err := rw.Write(answer); err != nil {
			return err
		}
		if _, isConn := rw.(net.Conn); hangUp && isConn {
			return errors.New("modbustest: hung up")
		}
	}
}

// resync throws input away until the line has been quiet for 20 ms.
func (s *RTUServer) resync(rw io.ReadWriter) {
	d, ok := rw.(deadliner)
	if !ok {
		return
	}
	defer func() { _ = d.SetReadDeadline(time.Time{}) }()
	var buf [256]byte
	for range 100 {
		_ = d.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, err := rw.Read(buf[:]); n == 0 || err != nil {
			return
		}
	}
}

// answer is the whole answer frame to an intact request, or nil for none.
func (s *RTUServer) answer(req []byte) []byte {
	unit, fc := req[0], req[1]
	s.mu.Lock()
	slave := s.slaves[unit]
	if slave != nil {
		s.requests[unit]++
	}
	mute := s.mute[unit]
	corrupt := s.corrupt[unit] > 0
	if corrupt && slave != nil && !mute {
		s.corrupt[unit]--
	}
	s.mu.Unlock()
	if slave == nil || mute {
		return nil
	}
	pdu := execute(slave, fc, req[2:len(req)-2])
	out := rtuframe.Seal(append([]byte{unit}, pdu...))
	if corrupt {
		out[len(out)-1] ^= 0xFF
	}
	return out
}

// execute runs one request PDU (function code fc, data) on a slave's
// memory and returns the answer PDU.
func execute(slave *Server, fc byte, data []byte) []byte {
	h := (*handler)(slave)
	be := binary.BigEndian
	if len(data) < 4 {
		return []byte{fc | 0x80, 3}
	}
	addr, qty := be.Uint16(data), be.Uint16(data[2:])
	var err error
	var out []byte
	switch fc {
	case 1, 2:
		var bits []bool
		if fc == 1 {
			bits, err = h.HandleCoils(&smb.CoilsRequest{Addr: addr, Quantity: qty})
		} else {
			bits, err = h.HandleDiscreteInputs(&smb.DiscreteInputsRequest{Addr: addr, Quantity: qty})
		}
		if err == nil {
			packed := make([]byte, (len(bits)+7)/8)
			for i, on := range bits {
				if on {
					packed[i/8] |= 1 << (i % 8)
				}
			}
			out = append([]byte{fc, byte(len(packed))}, packed...)
		}
	case 3, 4:
		var regs []uint16
		if fc == 3 {
			regs, err = h.HandleHoldingRegisters(&smb.HoldingRegistersRequest{Addr: addr, Quantity: qty})
		} else {
			regs, err = h.HandleInputRegisters(&smb.InputRegistersRequest{Addr: addr, Quantity: qty})
		}
		if err == nil {
			out = []byte{fc, byte(2 * len(regs))}
			for _, r := range regs {
				out = be.AppendUint16(out, r)
			}
		}
	case 5:
		_, err = h.HandleCoils(&smb.CoilsRequest{Addr: addr, Quantity: 1, IsWrite: true, Args: []bool{qty == 0xFF00}})
		out = append([]byte{fc}, data[:4]...)
	case 6:
		_, err = h.HandleHoldingRegisters(&smb.HoldingRegistersRequest{Addr: addr, Quantity: 1, IsWrite: true, Args: []uint16{qty}})
		out = append([]byte{fc}, data[:4]...)
	case 15:
		args := make([]bool, qty)
		for i := range args {
			if 5+i/8 < len(data) {
				args[i] = data[5+i/8]>>(i%8)&1 == 1
			}
		}
		_, err = h.HandleCoils(&smb.CoilsRequest{Addr: addr, Quantity: qty, IsWrite: true, Args: args})
		out = append([]byte{fc}, data[:4]...)
	case 16:
		args := make([]uint16, qty)
		for i := range args {
			if 5+2*i+1 < len(data) {
				args[i] = be.Uint16(data[5+2*i:])
			}
		}
		_, err = h.HandleHoldingRegisters(&smb.HoldingRegistersRequest{Addr: addr, Quantity: qty, IsWrite: true, Args: args})
		out = append([]byte{fc}, data[:4]...)
	default:
		return []byte{fc | 0x80, 1}
	}
	switch {
	case errors.Is(err, smb.ErrIllegalDataAddress):
		return []byte{fc | 0x80, 2}
	case err != nil:
		return []byte{fc | 0x80, 4}
	}
	return out
}
