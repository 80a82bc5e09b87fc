package watch

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func dataMsg(gw string, seqs ...uint64) []byte {
	var s []string
	for _, q := range seqs {
		s = append(s, fmt.Sprintf(`{"seq":%d,"tag":"LT-101","unit":"m","value":1.5,"quality":"good","time":"2026-11-23T10:00:00.000Z"}`, q))
	}
	return fmt.Appendf(nil, `{"v":1,"gateway":%q,"enterprise":"E1","stream":"data","seq_first":%d,"seq_last":%d,"sent_at":"2026-11-23T10:00:00.100Z","samples":[%s]}`,
		gw, seqs[0], seqs[len(seqs)-1], strings.Join(s, ","))
}

func eventMsg(gw string, seq uint64, kind, extra string) []byte {
	return fmt.Appendf(nil, `{"v":1,"gateway":%q,"enterprise":"E1","stream":"event","seq":%d,"kind":%q,"time":"2026-11-23T10:00:00.000Z","message":"m"%s}`, gw, seq, kind, extra)
}

// statusMsg is an online status whose buffer says the next data number is
// next with waiting records still buffered.
func statusMsg(gw string, next, waiting uint64) []byte {
	return fmt.Appendf(nil, `{"v":1,"gateway":%q,"enterprise":"E1","state":"online","time":"2026-11-23T10:00:00.000Z","version":"dev","started_at":"2026-11-23T09:00:00.000Z","uptime_s":3600,"broker":"tcp://b:1883",`+
		`"health":{"devices":[],"buffer":{"records":%d,"event_records":0,"data_records":%d,"bytes":0,"dropped":0,"data_next_seq":%d,"event_next_seq":1},`+
		`"broker":{"connected":true,"reconnects":0,"connect_failures":0,"in_flight":0},"alarms":{"active":0,"hh":0,"h":0,"l":0,"ll":0,"roc":0,"dev":0,"fault":0,"red":0,"orange":0,"yellow":0,"blue":0},"clock":{"state":"ok","jumps":0}}}`,
		gw, waiting, waiting, next)
}

func TestCheckerSequencesAndSchemas(t *testing.T) {
	cases := []struct {
		name    string
		msgs    [][2]string // topic, payload
		ok      bool
		dups    uint64
		missing string // fmt of Report.Missing
		invalid uint64
		printed string
	}{
		{
			name: "contiguous with a resend after a reconnection",
			msgs: [][2]string{
				{"hazgate/g1/data", string(dataMsg("g1", 5, 6, 7))},
				{"hazgate/g1/data", string(dataMsg("g1", 6, 7, 8))}, // resent from 6
				{"hazgate/g1/data", string(dataMsg("g1", 3, 4))},    // older backlog: lowers the start
			},
			ok: true, dups: 2, missing: "map[]", printed: "DUPLICATE g1 data: 2 of 3",
		},
		{
			name: "a hole nobody explains",
			msgs: [][2]string{
				{"hazgate/g1/data", string(dataMsg("g1", 1, 2))},
				{"hazgate/g1/data", string(dataMsg("g1", 5, 6))},
			},
			ok: false, missing: "map[g1/data:[3..4]]", printed: "GAP!     g1/data: never received and not reported as dropped: 3..4",
		},
		{
			name: "a hole the gateway reported dropping",
			msgs: [][2]string{
				{"hazgate/g1/data", string(dataMsg("g1", 1, 2))},
				{"hazgate/g1/event", string(eventMsg("g1", 9, "gap", `,"gap":{"stream":"data","count":2,"first_seq":3,"last_seq":4,"cause":"size limit"}`))},
				{"hazgate/g1/data", string(dataMsg("g1", 5, 6))},
			},
			ok: true, missing: "map[]", printed: "known loss: data records 3..4",
		},
		{
			name: "gateways and streams are independent",
			msgs: [][2]string{
				{"hazgate/g1/data", string(dataMsg("g1", 1))},
				{"hazgate/g2/data", string(dataMsg("g2", 2))},
				{"hazgate/g1/event", string(eventMsg("g1", 7, "gateway_started", ""))},
				{"hazgate/g1/event", string(eventMsg("g1", 7, "gateway_started", ""))},
			},
			ok: true, dups: 1, missing: "map[]",
		},
		{
			// A broker ACL that acknowledges and drops (docs/uplink.md §1):
			// the gateway's buffer empties, nothing arrives.
			name: "status says acknowledged, nothing arrived",
			msgs: [][2]string{
				{"hazgate/g1/data", string(dataMsg("g1", 1, 2))},
				{"hazgate/g1/status", string(statusMsg("g1", 3, 0))},
				{"hazgate/g1/status", string(statusMsg("g1", 40, 5))},
			},
			ok: false, missing: "map[]", printed: "LOST!    g1/data: the gateway says the broker acknowledged 3..34",
		},
		{
			name: "status claims covered by what arrived, or still buffered",
			msgs: [][2]string{
				{"hazgate/g1/status", string(statusMsg("g1", 3, 2))},
				{"hazgate/g1/data", string(dataMsg("g1", 1, 2, 3, 4))},
				{"hazgate/g1/status", string(statusMsg("g1", 20, 15))},
			},
			ok: true, missing: "map[]", printed: "SUMMARY",
		},
		{
			name: "invalid payload",
			msgs: [][2]string{
				{"hazgate/g1/data", `{"v":1,"gateway":"g1"}`},
				{"hazgate/g1/event", string(eventMsg("g1", 1, "alarm_raised", ""))}, // no tag, no level
			},
			ok: false, invalid: 2, missing: "map[]", printed: "INVALID",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := NewChecker(&out, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				c.Handle(m[0], []byte(m[1]), false)
			}
			r := c.Finish()
			if r.OK() != tc.ok || r.Duplicates != tc.dups || fmt.Sprint(r.Missing) != tc.missing || r.Invalid != tc.invalid {
				t.Errorf("report ok=%v dups=%d missing=%v invalid=%d, want ok=%v dups=%d missing=%s invalid=%d\n%s",
					r.OK(), r.Duplicates, r.Missing, r.Invalid, tc.ok, tc.dups, tc.missing, tc.invalid, out.String())
			}
			if !strings.Contains(out.String(), tc.printed) {
				t.Errorf("output lacks %q:\n%s", tc.printed, out.String())
			}
		})
	}
}
