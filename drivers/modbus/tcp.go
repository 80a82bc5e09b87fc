// Package modbus is hazgate's Modbus driver: it plans the fewest read
// requests that cover a device's tags, polls them, decodes every type and
// byte order the config allows, reports each tag's value with a quality and
// a reason, and writes the tags the config marks writable.
//
// One poll logic (device.go) runs over three links: Modbus TCP (tcp.go,
// transport.go), RTU on a serial RS-485 bus and RTU over TCP through a
// serial-to-Ethernet converter (rtu.go, bus.go): several devices on one
// line share one bus owner that serialises their requests.
//
// PDUs are built and checked by goburrow/modbus v0.1.0; the exchanges are
// our own so that a late reply can never be taken for the answer to a later
// request.
package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	gmb "github.com/goburrow/modbus"

	"hazgate/drivers"
	"hazgate/internal/config"
)

// TCPDriver polls (and writes) one Modbus TCP device. Its methods are safe
// for concurrent use; requests to the device are serialised.
type TCPDriver struct {
	*driver
}

var (
	_ drivers.Driver = (*TCPDriver)(nil)
	_ drivers.Writer = (*TCPDriver)(nil)
)

// NewTCP checks the device's tags and plans their reads. It does not
// connect: the first Poll does.
func NewTCP(dev config.Device, log *slog.Logger) (*TCPDriver, error) {
	if dev.Address == "" {
		return nil, fmt.Errorf("modbus device %q: no address", dev.Name)
	}
	if dev.UnitID < 0 || dev.UnitID > 255 {
		return nil, fmt.Errorf("modbus device %q: unit id %d outside 0..255", dev.Name, dev.UnitID)
	}
	d, err := newCore(dev, log)
	if err != nil {
		return nil, err
	}
	// The handler frames and verifies (MBAP header, transaction, protocol
	// and unit id); its own Send is never called, our transport is.
	handler := gmb.NewTCPClientHandler(dev.Address)
	handler.Timeout = time.Duration(dev.Timeout)
	handler.SlaveId = byte(dev.UnitID)
	handler.IdleTimeout = 0
	tr := &transport{address: dev.Address, timeout: time.Duration(dev.Timeout)}
	d.link = tr
	d.client = gmb.NewClient2(handler, tr)
	return &TCPDriver{driver: d}, nil
}

// bind, last and reset make the transport a link.
func (t *transport) bind(ctx context.Context) { t.ctx = ctx }
func (t *transport) last() exchangeInfo       { return t.lastEx }
func (t *transport) reset()                   { _ = t.Close() }
