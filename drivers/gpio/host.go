package gpio

import (
	"fmt"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"

	"hazgate/internal/config"
)

// Host opens the box's real lines through the Linux GPIO character device
// (/dev/gpiochip*, the ioctl v2 interface) with periph.io's gpioioctl: the
// backend "host". It is pure Go, so it cross-builds with CGO off.
//
// Only gpioioctl is loaded, not periph's whole host.Init: the board drivers
// it would add (bcm283x and others) map GPIO registers through /dev/mem,
// which the hardened service cannot open and which would fight the kernel
// for the same lines; the deprecated sysfs interface is gone from recent
// kernels. The character device works on every board whose kernel has a
// GPIO driver.
type Host struct{}

// Open implements Opener. A line is found by its name (gpioinfo lists
// them) or by chip and offset.
func (Host) Open(p config.GPIOPin) (pgpio.PinIO, error) {
	// Safe to call again: periph initialises its drivers once per process.
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("gpio: %w", err)
	}
	if len(gpioioctl.Chips) == 0 {
		return nil, fmt.Errorf("no GPIO chip found (no /dev/gpiochip*, or no permission to open them: the service's user must be in the group that owns them)")
	}
	if p.Chip != "" {
		var names []string
		for _, c := range gpioioctl.Chips {
			if c.Name() != p.Chip {
				names = append(names, c.Name())
				continue
			}
			if p.Offset >= c.LineCount() {
				return nil, fmt.Errorf("%s has %d lines (0..%d), not %d", p.Chip, c.LineCount(), c.LineCount()-1, p.Offset)
			}
			return c.ByNumber(p.Offset), nil
		}
		return nil, fmt.Errorf("no chip %s (found %s)", p.Chip, strings.Join(names, ", "))
	}
	if l := gpioreg.ByName(p.Name); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("no line named %s (gpioinfo lists the names; or write chip/offset like gpiochip0/17)", p.Name)
}
