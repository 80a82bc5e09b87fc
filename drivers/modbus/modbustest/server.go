// Package modbustest runs Modbus TCP peers on 127.0.0.1 for tests:
//
//   - Server: a well-behaved device (github.com/simonvetter/modbus) whose
//     registers, coils and discrete inputs a test sets; addresses never set
//     answer exception 2 (illegal data address).
//   - HangServer: accepts connections, reads, never answers.
//   - RawServer: hands every request frame to a function that may answer
//     late, wrongly or not at all, for misbehaving devices.
//
// Every server is stopped by t.Cleanup.
package modbustest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	smb "github.com/simonvetter/modbus"
)

// Server is an in-process Modbus TCP device.
type Server struct {
	// Addr is host:port to connect to.
	Addr string

	srv      *smb.ModbusServer
	mu       sync.Mutex
	holding  map[uint16]uint16
	input    map[uint16]uint16
	coils    map[uint16]bool
	discrete map[uint16]bool
	requests atomic.Int64
	delay    atomic.Int64 // nanoseconds to wait before each answer
}

// NewServer starts a device on a free port of 127.0.0.1. It serves every
// unit id.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := newStore()
	var err error
	// simonvetter/modbus does not expose its listener, so pick a free port
	// first; another process may take it in between, hence the retries.
	for range 5 {
		var addr string
		if addr, err = freePort(); err != nil {
			continue
		}
		s.srv, err = smb.NewServer(&smb.ServerConfiguration{
			URL:        "tcp://" + addr,
			Timeout:    30 * time.Second,
			MaxClients: 16,
			Logger:     log.New(io.Discard, "", 0),
		}, (*handler)(s))
		if err != nil {
			t.Fatalf("modbustest: %v", err)
		}
		if err = s.srv.Start(); err == nil {
			s.Addr = addr
			break
		}
	}
	if err != nil {
		t.Fatalf("modbustest: start server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// newStore is a device's memory without a network side.
func newStore() *Server {
	return &Server{
		holding:  map[uint16]uint16{},
		input:    map[uint16]uint16{},
		coils:    map[uint16]bool{},
		discrete: map[uint16]bool{},
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Stop closes the listener and every connection. Safe to call twice.
func (s *Server) Stop() {
	if s.srv != nil {
		_ = s.srv.Stop()
	}
}

// SetHolding sets holding registers addr, addr+1, ... to values.
func (s *Server) SetHolding(addr uint16, values ...uint16) { setAll(s, s.holding, addr, values) }

// SetInput sets input registers addr, addr+1, ... to values.
func (s *Server) SetInput(addr uint16, values ...uint16) { setAll(s, s.input, addr, values) }

// SetCoils sets coils addr, addr+1, ... to values.
func (s *Server) SetCoils(addr uint16, values ...bool) { setAll(s, s.coils, addr, values) }

// SetDiscrete sets discrete inputs addr, addr+1, ... to values.
func (s *Server) SetDiscrete(addr uint16, values ...bool) { setAll(s, s.discrete, addr, values) }

// Holding returns a holding register and whether it is mapped (for
// checking writes).
func (s *Server) Holding(addr uint16) (uint16, bool) { return get(s, s.holding, addr) }

// Coil returns a coil and whether it is mapped.
func (s *Server) Coil(addr uint16) (bool, bool) { return get(s, s.coils, addr) }

// Requests counts the requests the server has handled.
func (s *Server) Requests() int64 { return s.requests.Load() }

// SetDelay makes every later answer wait d (0: answer at once).
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

func setAll[V any](s *Server, m map[uint16]V, addr uint16, values []V) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range values {
		m[addr+uint16(i)] = v
	}
}

func get[V any](s *Server, m map[uint16]V, addr uint16) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[addr]
	return v, ok
}

// handler serves the maps; a request touching an unmapped address gets
// exception 2 as a real device would.
type handler Server

func serve[V any](s *Server, m map[uint16]V, addr, n uint16, write bool, args []V) ([]V, error) {
	s.requests.Add(1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]V, n)
	for i := range out {
		v, ok := m[addr+uint16(i)]
		if !ok {
			return nil, smb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	if write {
		for i, v := range args {
			m[addr+uint16(i)] = v
		}
		return nil, nil
	}
	return out, nil
}

func (h *handler) HandleCoils(r *smb.CoilsRequest) ([]bool, error) {
	s := (*Server)(h)
	return serve(s, s.coils, r.Addr, r.Quantity, r.IsWrite, r.Args)
}

func (h *handler) HandleDiscreteInputs(r *smb.DiscreteInputsRequest) ([]bool, error) {
	s := (*Server)(h)
	return serve(s, s.discrete, r.Addr, r.Quantity, false, nil)
}

func (h *handler) HandleHoldingRegisters(r *smb.HoldingRegistersRequest) ([]uint16, error) {
	s := (*Server)(h)
	return serve(s, s.holding, r.Addr, r.Quantity, r.IsWrite, r.Args)
}

func (h *handler) HandleInputRegisters(r *smb.InputRegistersRequest) ([]uint16, error) {
	s := (*Server)(h)
	return serve(s, s.input, r.Addr, r.Quantity, false, nil)
}

// HangServer accepts connections on 127.0.0.1, reads whatever comes and
// never answers: a device that has hung. It returns the address.
func HangServer(t testing.TB) string {
	t.Helper()
	return NewRawServer(t, func(net.Conn, Request) error { return nil }).Addr
}

// Request is one Modbus TCP request as a RawServer received it.
type Request struct {
	Seq      int    // 0 for the first request the server received, then 1, 2, ...
	TxID     uint16 // MBAP transaction id
	Unit     byte
	Function byte
	Data     []byte // the PDU after the function code
}

// Address and Quantity of a read request (function codes 1 to 4).
func (r Request) Address() uint16 { return be16(r.Data, 0) }

// Quantity is the number of registers or bits a read asks for.
func (r Request) Quantity() uint16 { return be16(r.Data, 2) }

func be16(b []byte, i int) uint16 {
	if len(b) < i+2 {
		return 0
	}
	return uint16(b[i])<<8 | uint16(b[i+1])
}

// Frame builds the answer to r carrying pdu (function code first), with
// r's transaction and unit id.
func (r Request) Frame(pdu []byte) []byte {
	n := len(pdu) + 1
	f := []byte{byte(r.TxID >> 8), byte(r.TxID), 0, 0, byte(n >> 8), byte(n), r.Unit}
	return append(f, pdu...)
}

// Registers builds the answer to a register read carrying values.
func (r Request) Registers(values ...uint16) []byte {
	pdu := []byte{r.Function, byte(2 * len(values))}
	for _, v := range values {
		pdu = append(pdu, byte(v>>8), byte(v))
	}
	return r.Frame(pdu)
}

// Exception builds an exception answer with the given code.
func (r Request) Exception(code byte) []byte { return r.Frame([]byte{r.Function | 0x80, code}) }

// RawHandler answers one request by writing to conn: at once, late, wrongly
// or not at all. An error closes the connection. Requests on one
// connection are handled one after the other.
type RawHandler func(conn net.Conn, req Request) error

// RawServer is a hand-written Modbus TCP server for misbehaving devices.
type RawServer struct {
	Addr string

	ln    net.Listener
	seq   atomic.Int64
	conns atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
}

// NewRawServer listens on a free port of 127.0.0.1 and calls h for every
// request frame it reads.
func NewRawServer(t testing.TB, h RawHandler) *RawServer {
	t.Helper()
	return NewRawServerOn(t, "127.0.0.1:0", h)
}

// NewRawServerOn is NewRawServer on a given address, for a device that
// comes back on the address it had (addr must be on 127.0.0.1).
func NewRawServerOn(t testing.TB, addr string, h RawHandler) *RawServer {
	t.Helper()
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("modbustest: %q is not an address on 127.0.0.1", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("modbustest: listen: %v", err)
	}
	s := &RawServer{Addr: ln.Addr().String(), ln: ln, open: map[net.Conn]struct{}{}}
	s.wg.Go(func() { s.accept(h) })
	t.Cleanup(s.Stop)
	return s
}

// Connections counts the connections accepted so far.
func (s *RawServer) Connections() int64 { return s.conns.Load() }

// Stop closes the listener and every connection and waits for the
// handlers to return. Safe to call twice.
func (s *RawServer) Stop() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *RawServer) accept(h RawHandler) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.mu.Lock()
		s.open[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.open, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			s.serve(c, h)
		})
	}
}

func (s *RawServer) serve(c net.Conn, h RawHandler) {
	for {
		var head [7]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			return
		}
		n := int(head[4])<<8 | int(head[5])
		if n < 2 || n > 254 {
			return
		}
		pdu := make([]byte, n-1)
		if _, err := io.ReadFull(c, pdu); err != nil {
			return
		}
		req := Request{
			Seq:      int(s.seq.Add(1) - 1),
			TxID:     uint16(head[0])<<8 | uint16(head[1]),
			Unit:     head[6],
			Function: pdu[0],
			Data:     pdu[1:],
		}
		if err := h(c, req); err != nil {
			return
		}
	}
}

// ErrClose, returned by a RawHandler, closes the connection quietly.
var ErrClose = errors.New("modbustest: close connection")

// String describes a request for test failure messages.
func (r Request) String() string {
	return fmt.Sprintf("#%d tx %d unit %d fc %d addr %d qty %d", r.Seq, r.TxID, r.Unit, r.Function, r.Address(), r.Quantity())
}
