package rtuframe

import (
	"bytes"
	"errors"
	"testing"
)

// Frames with their CRCs written out, from the Modbus over Serial Line
// specification (6.2.2: CRC of 02 07 is 0x1241, sent 41 12) and from
// captures of real devices.
var frames = []struct {
	name  string
	frame []byte // whole frame, CRC last (low byte first)
}{
	{"spec example 02 07", []byte{0x02, 0x07, 0x41, 0x12}},
	{"read 10 holding from slave 1 at 0", []byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}},
	{"read 1 holding from slave 17 at 107", []byte{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87}},
	{"answer: 2 registers 0x1234 0x5678", []byte{0x01, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78, 0x81, 0x07}},
	{"write coil 0 on, slave 1", []byte{0x01, 0x05, 0x00, 0x00, 0xFF, 0x00, 0x8C, 0x3A}},
	{"exception 2 to a read of slave 1", []byte{0x01, 0x83, 0x02, 0xC0, 0xF1}},
}

func TestCRC(t *testing.T) {
	for _, f := range frames {
		body := f.frame[:len(f.frame)-2]
		if got := Seal(append([]byte(nil), body...)); !bytes.Equal(got, f.frame) {
			t.Errorf("%s: Seal gives % x, want % x", f.name, got, f.frame)
		}
		if err := Check(f.frame); err != nil {
			t.Errorf("%s: Check: %v", f.name, err)
		}
		for i := range f.frame { // any one bit flipped is caught
			bad := append([]byte(nil), f.frame...)
			bad[i] ^= 0x10
			if err := Check(bad); !errors.Is(err, ErrCRC) {
				t.Errorf("%s: byte %d flipped: Check %v, want ErrCRC", f.name, i, err)
			}
		}
	}
	if CRC(nil) != 0xFFFF {
		t.Errorf("CRC of nothing is %#x, want the initial 0xFFFF", CRC(nil))
	}
	if err := Check([]byte{1, 3, 0}); err == nil {
		t.Error("Check accepted 3 bytes")
	}
}

func TestLengths(t *testing.T) {
	resp := []struct {
		head []byte
		n    int
	}{
		{[]byte{1, 3, 4}, 9}, {[]byte{1, 1, 1}, 6}, {[]byte{1, 0x83, 2}, 5},
		{[]byte{1, 5, 0}, 8}, {[]byte{1, 16, 0}, 8}, {[]byte{1, 4, 250}, 255}, {[]byte{1, 4, 251}, 256},
	}
	for _, r := range resp {
		if n, err := ResponseLength(r.head); err != nil || n != r.n {
			t.Errorf("ResponseLength(% x) = %d, %v; want %d", r.head, n, err, r.n)
		}
	}
	if _, err := ResponseLength([]byte{1, 3, 252}); !errors.Is(err, ErrTooLong) {
		t.Errorf("byte count 252: %v, want ErrTooLong", err)
	}
	if _, err := ResponseLength([]byte{1, 43, 0}); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("function 43: %v", err)
	}
	req := []struct {
		head []byte
		n    int
	}{
		{[]byte{1, 3}, 8}, {[]byte{1, 6}, 8}, {[]byte{1, 16, 0, 0, 0, 2, 4}, 13}, {[]byte{1, 15, 0, 0, 0, 9, 2}, 11},
	}
	for _, r := range req {
		if n, err := RequestLength(r.head); err != nil || n != r.n {
			t.Errorf("RequestLength(% x) = %d, %v; want %d", r.head, n, err, r.n)
		}
	}
	if _, err := RequestLength([]byte{1, 16, 0}); err == nil {
		t.Error("RequestLength of a short function 16 head succeeded")
	}
}

// FuzzFrame: no input makes the frame functions panic, and Check accepts a
// frame only if its CRC is right.
func FuzzFrame(f *testing.F) {
	for _, fr := range frames {
		f.Add(fr.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ResponseLength(b)
		_, _ = RequestLength(b)
		if Check(b) == nil && len(b) >= MinSize {
			if !bytes.Equal(Seal(append([]byte(nil), b[:len(b)-2]...)), b) {
				t.Fatalf("Check accepted % x", b)
			}
		}
	})
}
