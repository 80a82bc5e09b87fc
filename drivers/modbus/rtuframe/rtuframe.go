// Package rtuframe is the byte-level truth of Modbus RTU frames (Modbus
// over Serial Line v1.02, 2.5.1): the CRC and how long a frame is, told
// from its first bytes. On a serial line frames are delimited by silence,
// which a program on a busy CPU cannot measure reliably, so hazgate reads
// a frame by its length instead and uses silence only to resynchronise.
//
// A frame is: slave address (1 byte), function code (1), data (0..252),
// CRC (2, low byte first).
package rtuframe

import "errors"

// Limits of a frame.
const (
	MinSize = 4   // address, function, CRC
	MaxSize = 256 // address, function, 252 data bytes, CRC
	// HeadSize is how many bytes of an answer tell its length.
	HeadSize = 3
)

// table holds the CRC of every byte value; computed once, never changed.
var table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001 // 0x8005 reflected
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC is the CRC-16/MODBUS of b (polynomial 0x8005 reflected, initial
// value 0xFFFF, no final XOR).
func CRC(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc = crc>>8 ^ table[byte(crc)^x]
	}
	return crc
}

// Seal appends the CRC to a frame without one, low byte first.
func Seal(frame []byte) []byte {
	c := CRC(frame)
	return append(frame, byte(c), byte(c>>8))
}

// ErrCRC is a frame whose CRC does not match its bytes.
var ErrCRC = errors.New("crc mismatch")

// Check reports whether a whole frame (CRC included) is intact.
func Check(frame []byte) error {
	if len(frame) < MinSize {
		return errors.New("frame shorter than 4 bytes")
	}
	n := len(frame) - 2
	if CRC(frame[:n]) != uint16(frame[n])|uint16(frame[n+1])<<8 {
		return ErrCRC
	}
	return nil
}

// ErrUnknownFunction is a function code whose frame length this package
// cannot tell.
var ErrUnknownFunction = errors.New("unknown function code")

// ResponseLength is the length of a whole answer (CRC included) from its
// first HeadSize bytes: address, function code and the byte after it.
func ResponseLength(head []byte) (int, error) {
	if len(head) < HeadSize {
		return 0, errors.New("short head")
	}
	fc := head[1]
	switch {
	case fc&0x80 != 0: // exception: address, function, code, CRC
		return 5, nil
	case fc >= 1 && fc <= 4: // reads: address, function, byte count, data, CRC
		return fit(5 + int(head[2]))
	case fc == 5 || fc == 6 || fc == 15 || fc == 16: // writes echo address and value or quantity
		return 8, nil
	}
	return 0, ErrUnknownFunction
}

// ErrTooLong is a frame whose byte count makes it longer than MaxSize.
var ErrTooLong = errors.New("byte count makes the frame longer than 256 bytes")

func fit(n int) (int, error) {
	if n > MaxSize {
		return 0, ErrTooLong
	}
	return n, nil
}

// RequestHeadSize is how many bytes of a request tell its length.
const RequestHeadSize = 7

// RequestLength is the length of a whole request (CRC included) from its
// first RequestHeadSize bytes (fewer will do for fixed-size requests).
func RequestLength(head []byte) (int, error) {
	if len(head) < 2 {
		return 0, errors.New("short head")
	}
	switch fc := head[1]; fc {
	case 1, 2, 3, 4, 5, 6:
		return 8, nil
	case 15, 16: // address, function, start (2), quantity (2), byte count, data, CRC
		if len(head) < RequestHeadSize {
			return 0, errors.New("short head")
		}
		return fit(9 + int(head[6]))
	}
	return 0, ErrUnknownFunction
}
