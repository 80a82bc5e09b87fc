package modbus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

func BenchmarkDecode(b *testing.B) {
	for _, f := range []Format{{Type: Uint16}, {Type: Int32, Order: CDAB}, {Type: Float32, Order: CDAB}, {Type: Float64, Order: DCBA}} {
		raw, err := f.Encode(123)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%v-%v", f.Type, f.Order), func(b *testing.B) {
			for b.Loop() {
				if _, err := f.Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPoll100 polls 100 tags (float32 CDAB, int16, uint32 and bits,
// 4-20 mA scaled) from a simonvetter server over loopback: 2 requests.
func BenchmarkPoll100(b *testing.B) {
	srv := modbustest.NewServer(b)
	var tags []config.Tag
	addr := 0
	for i := range 100 {
		var tg config.Tag
		switch i % 4 {
		case 0:
			set(b, srv, config.AreaHolding, addr, Format{Type: Float32, Order: CDAB}, 12)
			tg = tag(fmt.Sprintf("LT-%d", i), config.AreaHolding, addr, "float32", "CDAB")
			tg.Range, tg.Scale = &config.Range{Min: 0, Max: 10}, &config.Scale{RawMin: 4, RawMax: 20}
			addr += 2
		case 1:
			set(b, srv, config.AreaHolding, addr, Format{Type: Int16}, -5)
			tg = tag(fmt.Sprintf("TT-%d", i), config.AreaHolding, addr, "int16", "")
			addr++
		case 2:
			set(b, srv, config.AreaHolding, addr, Format{Type: Uint32}, 70000)
			tg = tag(fmt.Sprintf("FQ-%d", i), config.AreaHolding, addr, "uint32", "")
			addr += 2
		case 3:
			srv.SetHolding(uint16(addr), 0x0004)
			tg = tag(fmt.Sprintf("XS-%d", i), config.AreaHolding, addr, "bit", "")
			tg.Bit = 2
			addr++
		}
		tags = append(tags, tg)
	}
	d, err := NewTCP(device(srv.Addr, time.Second, tags...), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for b.Loop() {
		samples, err := d.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if samples[0].Quality != model.Good || samples[0].Value != 5 {
			b.Fatalf("sample %+v", samples[0])
		}
	}
	b.ReportMetric(float64(len(d.Requests())), "requests/poll")
}
