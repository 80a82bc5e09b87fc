package config

// ProtocolGPIO is a device made of the gateway box's own digital lines:
// inputs wired to dry contacts (a gas controller's alarm relay, a door
// switch, a power supply's status contact) and outputs driving a beacon, a
// horn or an interposing relay. Its tags name a pin instead of a Modbus
// area and address (Tag.GPIO); it has no address. See docs/gpio.md.
const ProtocolGPIO = "gpio"

// GPIO backends (Device.GPIO.Backend).
const (
	// GPIOBackendHost drives the box's real lines through the Linux GPIO
	// character device (/dev/gpiochip*), with periph.io's gpioioctl.
	GPIOBackendHost = "host"
	// GPIOBackendFake keeps the lines in memory: for tests and the demo,
	// where a program sets the inputs and reads the outputs.
	GPIOBackendFake = "fake"
)

// GPIO line directions (TagGPIO.Direction).
const (
	GPIOIn  = "in"
	GPIOOut = "out"
)

// GPIO input bias (TagGPIO.Pull).
const (
	GPIOPullNone = "none"
	GPIOPullUp   = "up"
	GPIOPullDown = "down"
)

// GPIO is the device part of protocol gpio (Device.GPIO).
type GPIO struct {
	Backend string `yaml:"backend"` // host (default) | fake
}

// TagGPIO is one GPIO line (Tag.GPIO). Values are logical: 1 means the
// contact is active (closed alarm contact, beacon on), whatever the wiring;
// ActiveLow says that active is the low electrical level.
type TagGPIO struct {
	// Pin is the line: its name as the kernel knows it (GPIO17 on a
	// Raspberry Pi, as `gpioinfo` lists it) or chip/offset (gpiochip0/17).
	Pin       string `yaml:"pin"`
	Direction string `yaml:"direction"`  // required: in | out
	ActiveLow bool   `yaml:"active_low"` // logical 1 = low level; default false

	// Inputs only.
	Pull     string   `yaml:"pull"`     // none (default) | up | down: the line's bias
	Debounce Duration `yaml:"debounce"` // a new level counts once it has been read this long; default 0

	// Outputs only: the logical state driven when the gateway opens the
	// line (at start and after a reopen); 0 (default) or 1. Choose the
	// safe state: see docs/gpio.md.
	Initial *int `yaml:"initial"`
}
