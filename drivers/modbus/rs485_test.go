package modbus

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/goburrow/serial"

	"hazgate/internal/config"
)

// openPTY opens a pseudo-terminal pair and returns the path of its slave
// end: a serial port without RS-485 mode, as USB adapters are.
func openPTY(t *testing.T) string {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Skipf("unlock pty: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Skipf("pty number: %v", errno)
	}
	return fmt.Sprintf("/dev/pts/%d", n)
}

// TestRS485ModeReachesThePort: with serial.rs485 the port is switched into
// the kernel's RS-485 mode when opened. A pty has none, so the ioctl is
// refused, and the error tells the integrator what to do; the same port
// without rs485 opens. (A UART with RS-485 support needs hardware.)
func TestRS485ModeReachesThePort(t *testing.T) {
	pty := openPTY(t)
	line := config.Serial{Port: pty, Baud: 9600, DataBits: 8, Parity: "E", StopBits: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	plain := NewSerialBus(line, nil).line.(*serialLine)
	if _, err := plain.open(ctx); err != nil {
		t.Fatalf("the pty does not open as a plain serial port: %v", err)
	}
	_ = plain.port.Close()

	line.RS485 = &config.RS485{RTSOnSend: config.RTSHigh, DelayBeforeSend: config.Duration(time.Millisecond)}
	b := NewSerialBus(line, nil)
	if b.turnAround != time.Millisecond {
		t.Errorf("turnaround %v, want the 1ms delay: the answer timeout would pay for it", b.turnAround)
	}
	l := b.line.(*serialLine)
	want := serial.RS485Config{Enabled: true, DelayRtsBeforeSend: time.Millisecond, RtsHighDuringSend: true}
	if l.cfg.RS485 != want {
		t.Errorf("RS-485 settings %+v, want %+v", l.cfg.RS485, want)
	}
	_, err := l.open(ctx)
	if err == nil {
		_ = l.port.Close()
		t.Fatal("a pty accepted RS-485 mode: the setting did not reach the port")
	}
	for _, s := range []string{pty, "RS-485 mode", "remove serial.rs485"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}
