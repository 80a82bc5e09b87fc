package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"hazgate/drivers"
	"hazgate/drivers/modbus"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

const modbusUsage = `usage: hazgate modbus read (--tcp HOST:PORT | --rtu-tcp HOST:PORT | --rtu DEVICE [--baud N] [--parity N|E|O] [--stop-bits 1|2])
                          [--unit U] [--area holding|input|coil|discrete] --addr A [--count N]
                          [--type uint16|int16|uint32|int32|float32|float64|bit|bool] [--order ABCD|BADC|CDAB|DCBA] [--bit B]
                          [--timeout 1s]`

// cmdModbus is the commissioning tool: it reads registers of a device
// without a config file and prints them decoded, with the raw words, so
// that an integrator can check a register map on site.
// Exit 0: every value read; 1: a value could not be read; 2: bad arguments.
func cmdModbus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "read" {
		fmt.Fprintln(stderr, modbusUsage)
		return exitUsage
	}
	dev, raw, err := modbusReadFlags(args[1:], stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintf(stderr, "hazgate modbus read: %v\n%s\n", err, modbusUsage)
		}
		return exitUsage
	}
	var drv interface {
		drivers.Driver
		Stats() modbus.Stats
	}
	switch dev.Protocol {
	case config.ProtocolModbusTCP:
		drv, err = modbus.NewTCP(dev, nil)
	default:
		var bus *modbus.Bus
		if bus, err = modbus.NewBuses(nil).For(dev); err == nil {
			drv, err = modbus.NewRTU(dev, bus, nil)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "hazgate modbus read: %v\n", err)
		return exitUsage
	}
	defer drv.Close()
	samples, err := drv.Poll(ctx)
	where := dev.Address
	if dev.Serial != nil && dev.Serial.Port != "" {
		s := dev.Serial
		where = fmt.Sprintf("%s %d %d%s%d", s.Port, s.Baud, s.DataBits, s.Parity, s.StopBits)
	}
	t := dev.Tags[0]
	fmt.Fprintf(stdout, "%s %s unit %d: %s, %s %s\n", dev.Protocol, where, dev.UnitID, t.Area, t.Type, t.Order)
	byName := make(map[string]model.Sample, len(samples))
	for _, s := range samples {
		byName[s.Tag] = s
	}
	code := exitOK
	for _, tg := range dev.Tags[:len(dev.Tags)-raw] {
		s := byName[tg.Name]
		line := fmt.Sprintf("%s %d: ", tg.Area, *tg.Address)
		if s.Quality != model.Good {
			line += "bad: " + s.Reason
			code = exitFailure
		} else {
			line += fmt.Sprint(s.Value)
		}
		if words := rawWords(tg, byName); words != "" {
			line += "  [" + words + "]"
		}
		fmt.Fprintln(stdout, line)
	}
	st := drv.Stats()
	fmt.Fprintf(stdout, "%d request(s), round trip %v\n", st.Requests, st.LastRoundTrip.Round(time.Microsecond))
	if err != nil && code == exitOK {
		code = exitFailure
	}
	return code
}

// rawWords prints the registers of a register tag in hex, as they came
// off the wire, from the helper tags named "raw@ADDR".
func rawWords(tg config.Tag, byName map[string]model.Sample) string {
	var w []string
	for i := range widthOf(tg) {
		s, ok := byName[fmt.Sprintf("raw@%d", *tg.Address+i)]
		if !ok || s.Quality != model.Good {
			return ""
		}
		w = append(w, fmt.Sprintf("%04X", uint16(s.Value)))
	}
	return strings.Join(w, " ")
}

func widthOf(tg config.Tag) int {
	if tg.Area == config.AreaCoil || tg.Area == config.AreaDiscrete {
		return 0
	}
	return tg.Width()
}

// modbusReadFlags turns the flags into a device with one tag per value,
// plus (for registers) one uint16 tag per register for the raw words; it
// returns how many of those there are.
func modbusReadFlags(args []string, stderr io.Writer) (config.Device, int, error) {
	fs := flag.NewFlagSet("modbus read", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tcpAddr := fs.String("tcp", "", "Modbus TCP device, host:port")
	rtuTCP := fs.String("rtu-tcp", "", "Modbus RTU through a serial-to-Ethernet converter, host:port")
	rtu := fs.String("rtu", "", "Modbus RTU on a serial port, e.g. /dev/ttyUSB0")
	baud := fs.Int("baud", config.DefaultBaud, "baud rate (--rtu)")
	parity := fs.String("parity", config.DefaultParity, "parity N, E or O (--rtu)")
	stop := fs.Int("stop-bits", config.DefaultStopBits, "stop bits 1 or 2 (--rtu)")
	unit := fs.Int("unit", 1, "unit id (slave address)")
	area := fs.String("area", config.AreaHolding, "holding, input, coil or discrete")
	addr := fs.Int("addr", -1, "first 0-based address (register 40001 is holding 0)")
	count := fs.Int("count", 1, "number of values")
	typ := fs.String("type", "", "value type (default uint16 for registers, bool for coils)")
	order := fs.String("order", "ABCD", "byte order")
	bit := fs.Int("bit", 0, "bit of the register for --type bit")
	timeout := fs.Duration("timeout", time.Second, "answer timeout")
	rs485 := fs.String("rs485", "", "kernel RS-485 mode with RTS high or low while sending (--rtu, on a UART wired to the transceiver's DE pin)")
	if err := fs.Parse(args); err != nil {
		return config.Device{}, 0, err
	}
	dev := config.Device{Name: "modbus-read", UnitID: *unit, Timeout: config.Duration(*timeout), MaxGap: 0}
	n := 0
	for _, v := range []string{*tcpAddr, *rtuTCP, *rtu} {
		if v != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return dev, 0, fmt.Errorf("name one of --tcp, --rtu-tcp, --rtu")
	case *tcpAddr != "":
		dev.Protocol, dev.Address = config.ProtocolModbusTCP, *tcpAddr
	case *rtuTCP != "":
		dev.Protocol, dev.Address = config.ProtocolModbusRTUTCP, *rtuTCP
	default:
		dev.Protocol = config.ProtocolModbusRTU
		dev.Serial = &config.Serial{Port: *rtu, Baud: *baud, DataBits: 8, Parity: strings.ToUpper(*parity), StopBits: *stop}
		if *rs485 != "" {
			if *rs485 != config.RTSHigh && *rs485 != config.RTSLow {
				return dev, 0, fmt.Errorf("--rs485 %q: high or low (the RTS level while sending)", *rs485)
			}
			dev.Serial.RS485 = &config.RS485{RTSOnSend: *rs485}
		}
	}
	if *rs485 != "" && dev.Serial == nil {
		return dev, 0, fmt.Errorf("--rs485 is for --rtu: a converter switches the line's direction by itself")
	}
	if *addr < 0 || *addr > 65535 {
		return dev, 0, fmt.Errorf("--addr %d: give the first address, 0..65535", *addr)
	}
	if *count < 1 || *count > 125 {
		return dev, 0, fmt.Errorf("--count %d: 1..125 values", *count)
	}
	if *typ == "" {
		*typ = config.TypeUint16
		if *area == config.AreaCoil || *area == config.AreaDiscrete {
			*typ = config.TypeBool
		}
	}
	if *typ == config.TypeBool {
		*order = ""
	}
	raw := 0
	for i := range *count {
		a := *addr
		tg := config.Tag{Area: *area, Type: *typ, Order: strings.ToUpper(*order), Bit: *bit, Kind: config.KindCount}
		a += i * max(widthOf(tg), 1)
		if *typ == config.TypeBit {
			a = *addr + i // consecutive registers, the same bit of each
		}
		tg.Address, tg.Name = &a, fmt.Sprintf("value@%d", a)
		dev.Tags = append(dev.Tags, tg)
	}
	if w := widthOf(dev.Tags[0]); w > 0 {
		seen := map[int]bool{}
		for _, tg := range dev.Tags[:*count] {
			for j := range w {
				a := *tg.Address + j
				if seen[a] || a > 65535 {
					continue
				}
				seen[a] = true
				dev.Tags = append(dev.Tags, config.Tag{Name: fmt.Sprintf("raw@%d", a), Area: *area, Type: config.TypeUint16, Address: &a, Kind: config.KindCount})
				raw++
			}
		}
	}
	return dev, raw, nil
}

// warnLineLoads prints a warning for every RTU line that cannot carry the
// configured polls (see modbus.LineLoads). A warning does not make the
// file invalid: the gateway runs, its polls on that line overrun.
func warnLineLoads(w io.Writer, path string, cfg *config.Config) {
	for _, l := range modbus.LineLoads(cfg) {
		for _, msg := range l.Warnings() {
			fmt.Fprintf(w, "%s: warning: %s\n", path, msg)
		}
	}
}
