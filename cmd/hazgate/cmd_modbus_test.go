package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
)

func runModbus(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cmdModbus(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), code
}

// The commissioning tool reads a device without a config and prints the
// decoded values with the raw words.
func TestModbusRead(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, 0x0000, 0x4195, 0x0000, 0xC020) // 18.625, -2.5 as float32 CDAB
	srv.SetCoils(3, true, false)
	out, code := runModbus(t, "read", "--tcp", srv.Addr, "--unit", "1", "--area", "holding", "--addr", "0", "--count", "2", "--type", "float32", "--order", "CDAB")
	for _, want := range []string{"holding 0: 18.625  [0000 4195]", "holding 2: -2.5  [0000 C020]", "1 request(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d, want 0:\n%s", code, out)
	}
	out, code = runModbus(t, "read", "--tcp", srv.Addr, "--area", "coil", "--addr", "3", "--count", "2")
	if !strings.Contains(out, "coil 3: 1\n") || !strings.Contains(out, "coil 4: 0\n") || code != exitOK {
		t.Errorf("coils: exit %d\n%s", code, out)
	}
	// an unmapped address is reported with the exception, exit 1
	out, code = runModbus(t, "read", "--tcp", srv.Addr, "--addr", "500")
	if !strings.Contains(out, "holding 500: bad: exception: 2 (illegal data address)") || code != exitFailure {
		t.Errorf("unmapped: exit %d\n%s", code, out)
	}
}

// RTU over TCP through the same tool, two slaves on one converter.
func TestModbusReadRTUOverTCP(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	srv.Slave(2).SetInput(10, 485)
	out, code := runModbus(t, "read", "--rtu-tcp", srv.Addr, "--unit", "2", "--area", "input", "--addr", "10")
	if !strings.Contains(out, "input 10: 485  [01E5]") || code != exitOK {
		t.Errorf("exit %d\n%s", code, out)
	}
	out, code = runModbus(t, "read", "--rtu-tcp", srv.Addr, "--unit", "1", "--area", "input", "--addr", "10", "--timeout", "3s")
	if !strings.Contains(out, "bad: exception: 2") || code != exitFailure {
		t.Errorf("slave 1 unmapped: exit %d\n%s", code, out)
	}
}

func TestModbusReadUsage(t *testing.T) {
	for _, args := range [][]string{
		{}, {"write"}, {"read"}, {"read", "--tcp", "a:1", "--rtu", "/dev/x", "--addr", "0"},
		{"read", "--tcp", "127.0.0.1:1"}, {"read", "--tcp", "127.0.0.1:1", "--addr", "0", "--count", "0"},
		{"read", "--tcp", "127.0.0.1:1", "--addr", "0", "--type", "float16"},
		{"read", "--tcp", "127.0.0.1:1", "--addr", "0", "--rs485", "high"},
		{"read", "--rtu", "/dev/ttyS1", "--addr", "0", "--rs485", "up"},
	} {
		if out, code := runModbus(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out)
		}
	}
}

// validate warns about an RS-485 line that cannot carry its polls, and
// still exits 0.
func TestValidateWarnsAboutLineLoad(t *testing.T) {
	var b strings.Builder
	b.WriteString("gateway: {id: gw, enterprise_code: E1}\nuplink: {brokers: [tcp://127.0.0.1:1883]}\ndevices:\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  - {name: gas-%d, protocol: modbus-rtu, serial: {port: /dev/ttyS1, baud: 9600}, unit_id: %d, interval: 100ms, tags: [{name: G%d, kind: count, area: holding, address: 0, type: float32}]}\n", i, i+1, i)
	}
	path := filepath.Join(t.TempDir(), "plant.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := cmdValidate([]string{path}, &out, &errOut)
	if code != exitOK || !strings.Contains(out.String(), "valid") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "warning: serial /dev/ttyS1 (9600 8E1): the 4 devices need") {
		t.Errorf("no line-load warning:\n%s", errOut.String())
	}
}
