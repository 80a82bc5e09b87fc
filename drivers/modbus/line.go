package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/goburrow/serial"
)

// line is the byte stream of one RTU bus: a serial port, or a TCP
// connection to a serial-to-Ethernet converter. Only the bus owner's
// goroutine uses it. Its errors are *transportError, sorted.
type line interface {
	// open makes the line usable if it is not; it reports whether it
	// opened it now.
	open(ctx context.Context) (opened bool, err error)
	// write sends b whole.
	write(ctx context.Context, b []byte, deadline time.Time) error
	// readFull fills b, or fails at the deadline or when ctx is done.
	readFull(ctx context.Context, b []byte, deadline time.Time) error
	// drain discards input until nothing has arrived for quiet, but stops
	// at limit.
	drain(quiet time.Duration, limit time.Time)
	close() error
	// String names the line in logs.
	String() string
}

// tcpLine is RTU over TCP: a transparent converter passes the bytes to its
// serial port and back.
type tcpLine struct {
	address string
	dial    time.Duration // connect timeout
	conn    net.Conn
}

func (l *tcpLine) String() string { return "rtu-tcp " + l.address }

func (l *tcpLine) open(ctx context.Context) (bool, error) {
	if l.conn != nil {
		return false, nil
	}
	d := net.Dialer{Timeout: l.dial}
	c, err := d.DialContext(ctx, "tcp", l.address)
	if err != nil {
		return false, sortLineError("connect", err, ctx)
	}
	l.conn = c
	return true, nil
}

func (l *tcpLine) write(ctx context.Context, b []byte, deadline time.Time) error {
	return l.io(ctx, "send", deadline, func() error { _, err := l.conn.Write(b); return err })
}

func (l *tcpLine) readFull(ctx context.Context, b []byte, deadline time.Time) error {
	return l.io(ctx, "receive", deadline, func() error { _, err := io.ReadFull(l.conn, b); return err })
}

// io runs one blocking operation bounded by deadline and ctx: a cancelled
// context moves the deadline into the past, which wakes it at once.
func (l *tcpLine) io(ctx context.Context, op string, deadline time.Time, f func() error) error {
	if l.conn == nil {
		return &transportError{kind: failConn, op: op, err: errors.New("not connected")}
	}
	if err := l.conn.SetDeadline(deadline); err != nil {
		return sortLineError(op, err, ctx)
	}
	conn := l.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := f(); err != nil {
		return sortLineError(op, err, ctx)
	}
	return nil
}

func (l *tcpLine) drain(quiet time.Duration, limit time.Time) {
	if l.conn == nil {
		return
	}
	var buf [256]byte
	for time.Now().Before(limit) {
		until := time.Now().Add(quiet)
		if until.After(limit) {
			until = limit
		}
		_ = l.conn.SetReadDeadline(until)
		if n, err := l.conn.Read(buf[:]); n == 0 || err != nil {
			return
		}
	}
}

func (l *tcpLine) close() error {
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// serialLine is a serial port (goburrow/serial: termios on Linux). Its
// reads wait at most pollStep at a time so that a request's deadline and
// context are honoured; a port cannot be woken from another goroutine.
type serialLine struct {
	cfg  serial.Config
	port serial.Port
}

// pollStep bounds one blocking read of a serial port.
const pollStep = 10 * time.Millisecond

func (l *serialLine) String() string { return "serial " + l.cfg.Address }

func (l *serialLine) open(ctx context.Context) (bool, error) {
	if l.port != nil {
		return false, nil
	}
	cfg := l.cfg
	cfg.Timeout = pollStep
	p, err := serial.Open(&cfg)
	var sysErr *os.SyscallError
	if err != nil && cfg.RS485.Enabled && errors.As(err, &sysErr) && strings.Contains(sysErr.Syscall, "RS485") {
		// goburrow/serial names only the ioctl; say what it means on site.
		err = fmt.Errorf("%s: the port refused the kernel's RS-485 mode (%w): its driver has none; remove serial.rs485 (or --rs485) if the adapter switches the line's direction by itself", cfg.Address, err)
	}
	if err != nil {
		return false, sortLineError("open", err, ctx)
	}
	l.port = p
	return true, nil
}

func (l *serialLine) write(ctx context.Context, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		if l.port == nil {
			return &transportError{kind: failConn, op: "send", err: errors.New("port not open")}
		}
		n, err := l.port.Write(b)
		if n > 0 { // a failed write(2) returns -1
			b = b[n:]
		}
		switch {
		case errors.Is(err, syscall.EAGAIN): // output buffer full: wait for it
			if err := waitStep(ctx, deadline); err != nil {
				return &transportError{kind: err.kind, op: "send", err: err.err}
			}
		case err != nil:
			return sortLineError("send", err, ctx)
		}
	}
	return nil
}

func (l *serialLine) readFull(ctx context.Context, b []byte, deadline time.Time) error {
	got := 0
	for got < len(b) {
		if ctx.Err() != nil {
			return &transportError{kind: ctxKind(ctx), op: "receive", err: ctx.Err()}
		}
		if !time.Now().Before(deadline) {
			return &transportError{kind: failTimeout, op: "receive", err: os.ErrDeadlineExceeded}
		}
		if l.port == nil {
			return &transportError{kind: failConn, op: "receive", err: errors.New("port not open")}
		}
		n, err := l.port.Read(b[got:])
		if n > 0 { // a failed read(2) returns -1
			got += n
		}
		switch {
		case errors.Is(err, serial.ErrTimeout), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		case err != nil:
			return sortLineError("receive", err, ctx)
		case n == 0:
			// readable but nothing to read: the other end is gone
			// (a pty whose master closed, a USB adapter unplugged)
			return &transportError{kind: failConn, op: "receive", err: io.EOF}
		}
	}
	return nil
}

func (l *serialLine) drain(quiet time.Duration, limit time.Time) {
	var buf [256]byte
	last := time.Now()
	for l.port != nil && time.Now().Before(limit) && time.Since(last) < max(quiet, pollStep) {
		n, err := l.port.Read(buf[:])
		if n > 0 {
			last = time.Now()
		}
		if err != nil && !errors.Is(err, serial.ErrTimeout) && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR) {
			return
		}
		if n == 0 && err == nil {
			return
		}
	}
}

func (l *serialLine) close() error {
	if l.port == nil {
		return nil
	}
	err := l.port.Close()
	l.port = nil
	return err
}

// waitStep sleeps one poll step unless ctx or the deadline end first.
func waitStep(ctx context.Context, deadline time.Time) *transportError {
	d := min(pollStep, time.Until(deadline))
	if d <= 0 {
		return &transportError{kind: failTimeout, err: os.ErrDeadlineExceeded}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &transportError{kind: ctxKind(ctx), err: ctx.Err()}
	case <-t.C:
		return nil
	}
}

// sortLineError sorts a line failure as transport.fail does for Modbus
// TCP (without closing anything: the bus owner decides).
func sortLineError(op string, err error, ctx context.Context) *transportError {
	kind := failConn
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		kind, err = ctxKind(ctx), fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = failTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = failRefused
	}
	return &transportError{kind: kind, op: op, err: err}
}

// ctxKind sorts the end of ctx while a request was on its way: a deadline
// (the poll's time ran out before the device answered) is a timeout, like
// the device timeout it stands in for; only a cancellation (the gateway
// stops or reloads) leaves the tags "not polled". The connection deadline
// is the earlier of the two, so when they coincide whichever timer fires
// first must not change the reason.
func ctxKind(ctx context.Context) failKind {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return failTimeout
	}
	return failCancelled
}
