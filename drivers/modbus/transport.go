package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// MBAP header: transaction id (2), protocol id (2), length (2), unit id (1).
const (
	mbapHeader = 7
	// The length field counts the unit id, function code and data; a PDU
	// is at most 253 bytes, so the largest legal value is 254.
	maxMBAPLength = 254
)

// failKind sorts failures by what the driver does about them.
type failKind uint8

const (
	failTimeout   failKind = iota + 1 // no answer in time: abort the poll
	failRefused                       // nobody listens: abort the poll
	failConn                          // connection broke: abort the poll
	failProtocol                      // an answer came but is not valid: drop the connection, go on
	failException                     // the device answered with an exception: keep everything, go on
	failCancelled                     // the caller's context ended: abort the poll
)

// transportError is a failure of the TCP exchange itself.
type transportError struct {
	kind failKind
	op   string // "connect", "send", "receive"
	err  error
}

func (e *transportError) Error() string { return e.op + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// transport is goburrow's Transporter over one TCP connection, written here
// instead of using goburrow's tcpTransporter for three reasons:
//   - any failure closes the connection, so a late reply to a timed-out
//     request dies with the old socket instead of answering the next
//     request (goburrow issue #64);
//   - a request is bounded by the caller's context as well as the device
//     timeout, and a cancelled context aborts blocked reads at once;
//   - a malformed header closes the connection rather than guessing how
//     much to flush, and failures come back sorted (timeout, refused,
//     broken, malformed) without parsing error strings.
//
// goburrow still encodes and verifies the frames (TCPClientHandler as the
// Packager) and checks the PDUs (its Client). A transport is used by one
// goroutine at a time: the driver holds its lock across every request.
type transport struct {
	address string
	timeout time.Duration
	ctx     context.Context // of the request in flight; set by the driver

	conn   net.Conn
	lastEx exchangeInfo // of the latest Send
}

// Send writes one request ADU and reads one response ADU.
func (t *transport) Send(adu []byte) ([]byte, error) {
	ctx := t.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		t.lastEx = exchangeInfo{}
		return nil, &transportError{kind: failCancelled, op: "send", err: err}
	}
	t.lastEx = exchangeInfo{reused: t.conn != nil}
	if t.conn == nil {
		d := net.Dialer{Timeout: t.timeout}
		c, err := d.DialContext(ctx, "tcp", t.address)
		if err != nil {
			return nil, t.fail("connect", err, ctx)
		}
		t.conn = c
		t.lastEx.opened++
	}
	conn := t.conn
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, t.fail("send", err, ctx)
	}
	// A cancelled context moves the deadline into the past, which wakes a
	// blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	resp, op, err := exchange(conn, adu)
	if !stop() && err == nil {
		// The context ended while the answer arrived: the deadline may be
		// in the past for the next request, so start over next time.
		t.Close()
	}
	if err != nil {
		return nil, t.fail(op, err, ctx)
	}
	return resp, nil
}

func exchange(conn net.Conn, adu []byte) (resp []byte, op string, err error) {
	if _, err := conn.Write(adu); err != nil {
		return nil, "send", err
	}
	var head [mbapHeader]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return nil, "receive", err
	}
	if proto := binary.BigEndian.Uint16(head[2:]); proto != 0 {
		return nil, "receive", fmt.Errorf("%w: protocol id %d, want 0", errBadFrame, proto)
	}
	n := int(binary.BigEndian.Uint16(head[4:]))
	if n < 2 || n > maxMBAPLength {
		return nil, "receive", fmt.Errorf("%w: length %d outside 2..%d", errBadFrame, n, maxMBAPLength)
	}
	resp = make([]byte, mbapHeader+n-1)
	copy(resp, head[:])
	if _, err := io.ReadFull(conn, resp[mbapHeader:]); err != nil {
		return nil, "receive", err
	}
	return resp, "", nil
}

var errBadFrame = errors.New("malformed frame")

// fail closes the connection (after any failure the byte stream can no
// longer be trusted to line up with our requests) and sorts the error.
func (t *transport) fail(op string, err error, ctx context.Context) error {
	t.Close()
	if ctx.Err() == nil && errors.Is(err, errBadFrame) {
		return &transportError{kind: failProtocol, op: op, err: err}
	}
	return sortLineError(op, err, ctx)
}

// Close drops the connection; the next Send opens a new one.
func (t *transport) Close() error {
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}
