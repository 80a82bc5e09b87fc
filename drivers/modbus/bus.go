package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/goburrow/serial"

	"hazgate/drivers/modbus/rtuframe"
	"hazgate/internal/config"
)

// Bus owns one Modbus RTU line (an RS-485 port, or a serial-to-Ethernet
// converter reached over TCP) shared by every device on it. One goroutine
// serialises the requests of all devices: only one frame is ever on the
// wire, each request carries its own slave address, frames are kept apart
// by the line's silent interval, and each request waits for its own
// timeout only. A slave that does not answer costs the others the timeout
// of its request and nothing else: the line is not reset for it (the
// input is drained so that a late answer cannot be read as the next one).
//
// The line is opened on the first request and closed when the last device
// using the bus is closed.
type Bus struct {
	line    line
	silence time.Duration // between frames; 0 when the converter keeps it
	char    time.Duration // one character on the wire; 0 when unknown
	// turnAround is what RS-485 mode adds around each request (the RTS
	// delays before and after): the answer cannot start before it is over.
	turnAround time.Duration
	log        *slog.Logger
	calls      chan *busCall

	mu    sync.Mutex // guards users, stop, done
	users int
	stop  chan struct{}
	done  chan struct{}

	stats statsCounter
}

// busCall is one request waiting for the line.
type busCall struct {
	ctx     context.Context
	frame   []byte // whole request frame, CRC included
	timeout time.Duration
	result  chan busResult // buffered: the owner never blocks on a caller that left
}

type busResult struct {
	frame []byte // whole answer, CRC checked
	ex    exchangeInfo
	err   error
}

// NewSerialBus is the bus on a serial port. The port is configured from
// s (baud, data bits, parity, stop bits, and the kernel's RS-485 mode when
// s.RS485 is set) when it is opened.
func NewSerialBus(s config.Serial, log *slog.Logger) *Bus {
	cfg := serial.Config{Address: s.Port, BaudRate: s.Baud, DataBits: s.DataBits, StopBits: s.StopBits, Parity: s.Parity}
	if r := s.RS485; r != nil {
		high := r.RTSOnSend != config.RTSLow
		cfg.RS485 = serial.RS485Config{
			Enabled:            true,
			DelayRtsBeforeSend: time.Duration(r.DelayBeforeSend),
			DelayRtsAfterSend:  time.Duration(r.DelayAfterSend),
			RtsHighDuringSend:  high,
			RtsHighAfterSend:   !high,
			RxDuringTx:         false, // a half-duplex line would echo our own request
		}
	}
	b := newBus(&serialLine{cfg: cfg}, s.Silence(), s.CharTime(), log)
	b.turnAround = s.TurnAround()
	return b
}

// NewTCPBus is the bus behind a transparent serial-to-Ethernet converter
// at address. The converter keeps the serial timing; line, when not nil,
// describes its serial side so that the bus keeps the silent interval too
// (some converters forward bytes as they come).
func NewTCPBus(address string, line *config.Serial, log *slog.Logger) *Bus {
	var silence, char time.Duration
	if line != nil {
		silence, char = line.Silence(), line.CharTime()
	}
	return newBus(&tcpLine{address: address, dial: 3 * time.Second}, silence, char, log)
}

func newBus(l line, silence, char time.Duration, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{line: l, silence: silence, char: char, log: log.With("bus", l.String()), calls: make(chan *busCall)}
}

// String names the bus: "serial /dev/ttyS1" or "rtu-tcp 10.0.0.5:4001".
func (b *Bus) String() string { return b.line.String() }

// Stats returns the bus's counters: every request of every device on it.
func (b *Bus) Stats() Stats { return b.stats.snapshot() }

// attach registers a device on the bus, starting the owner if it is the
// first.
func (b *Bus) attach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.users++
	if b.users == 1 {
		b.stop, b.done = make(chan struct{}), make(chan struct{})
		go b.run(b.stop, b.done)
	}
}

// detach unregisters a device; the last one stops the owner and closes
// the line.
func (b *Bus) detach() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == 0 {
		return nil
	}
	b.users--
	if b.users > 0 {
		return nil
	}
	close(b.stop)
	<-b.done
	return nil
}

// do carries one request over the line and returns the answer. It returns
// when the answer came, the request failed, or ctx is done (the owner then
// abandons the request promptly). The caller must be attached.
func (b *Bus) do(ctx context.Context, frame []byte, timeout time.Duration) busResult {
	c := &busCall{ctx: ctx, frame: frame, timeout: timeout, result: make(chan busResult, 1)}
	cancelled := func() busResult {
		return busResult{err: &transportError{kind: failCancelled, op: "send", err: ctx.Err()}}
	}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return cancelled()
	}
	select {
	case r := <-c.result:
		return r
	case <-ctx.Done():
		return cancelled()
	}
}

func (b *Bus) run(stop, done chan struct{}) {
	defer close(done)
	var lastFrame time.Time // when the line last carried a frame end
	for {
		select {
		case <-stop:
			if err := b.line.close(); err != nil {
				b.log.Debug("close line", "err", err)
			}
			return
		case c := <-b.calls:
			r := b.serve(c, &lastFrame)
			b.stats.request(r.ex.rtt, r.ex.opened)
			if r.err != nil {
				b.stats.fail(classify(r.err, c.frame[1]).kind, r.err)
			} else if len(r.frame) > 1 && r.frame[1]&0x80 != 0 {
				b.stats.fail(failException, fmt.Errorf("exception %d from slave %d", r.frame[2], r.frame[0]))
			}
			c.result <- r
		}
	}
}

// serve runs one request. Reads (function 1 to 4) that find a TCP
// connection closed by the converter are tried once more on a new one;
// writes never are.
func (b *Bus) serve(c *busCall, lastFrame *time.Time) busResult {
	read := c.frame[1] >= 1 && c.frame[1] <= 4
	for attempt := 0; ; attempt++ {
		r := b.exchange(c, lastFrame)
		if r.err == nil {
			return r
		}
		var te *transportError
		errors.As(r.err, &te)
		if te != nil && (te.kind == failConn || te.kind == failRefused) {
			_ = b.line.close() // reopened by the next request
		}
		if read && attempt == 0 && r.ex.reused && te != nil && te.kind == failConn {
			b.log.Debug("line was closed; retrying on a new connection", "err", r.err)
			continue
		}
		return r
	}
}

func (b *Bus) exchange(c *busCall, lastFrame *time.Time) (r busResult) {
	ctx := c.ctx
	if err := ctx.Err(); err != nil {
		return busResult{err: &transportError{kind: failCancelled, op: "send", err: err}}
	}
	opened, err := b.line.open(ctx)
	r.ex.reused = !opened
	if opened {
		r.ex.opened = 1
	}
	if err != nil {
		return busResult{ex: r.ex, err: err}
	}
	// Keep the silent interval after the last frame on the line.
	if wait := time.Until(lastFrame.Add(b.silence)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return busResult{ex: r.ex, err: &transportError{kind: failCancelled, op: "send", err: ctx.Err()}}
		case <-t.C:
		}
	}
	start := time.Now()
	// The answer cannot start before the request has left the UART and,
	// in RS-485 mode, the kernel has released the line after it.
	deadline := start.Add(time.Duration(len(c.frame))*b.char + b.turnAround + c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	defer func() {
		*lastFrame = time.Now()
		r.ex.rtt = time.Since(start)
		if r.err != nil {
			var te *transportError
			if errors.As(r.err, &te) && te.kind != failConn && te.kind != failRefused {
				// Whatever is still coming (a late or garbled answer)
				// must not be taken for the next one.
				b.line.drain(max(b.silence, 2*pollStep), time.Now().Add(c.timeout))
			}
		}
	}()
	if err := b.line.write(ctx, c.frame, deadline); err != nil {
		return busResult{ex: r.ex, err: err}
	}
	head := make([]byte, rtuframe.HeadSize, rtuframe.MaxSize)
	if err := b.line.readFull(ctx, head, deadline); err != nil {
		return busResult{ex: r.ex, err: err}
	}
	if head[0] != c.frame[0] || head[1]&0x7F != c.frame[1] {
		return busResult{ex: r.ex, err: &transportError{kind: failProtocol, op: "receive",
			err: fmt.Errorf("%w: answer from slave %d function %d to a request to slave %d function %d", errBadFrame, head[0], head[1], c.frame[0], c.frame[1])}}
	}
	n, err := rtuframe.ResponseLength(head)
	if err != nil {
		return busResult{ex: r.ex, err: &transportError{kind: failProtocol, op: "receive", err: fmt.Errorf("%w: %w", errBadFrame, err)}}
	}
	frame := head[:n]
	if err := b.line.readFull(ctx, frame[rtuframe.HeadSize:], deadline); err != nil {
		return busResult{ex: r.ex, err: err}
	}
	if err := rtuframe.Check(frame); err != nil {
		return busResult{ex: r.ex, err: &transportError{kind: failProtocol, op: "receive", err: fmt.Errorf("%w: %w", errBadFrame, err)}}
	}
	return busResult{frame: frame, ex: r.ex}
}
