package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/model"
)

// cmdMsg is one message from a command topic.
type cmdMsg struct {
	topic   string
	payload []byte
}

const (
	// cmdQueue bounds the commands waiting for the session; more are
	// dropped (and logged): a flood must not stall publishing.
	cmdQueue = 16
	// maxResend bounds one resend command.
	maxResend = 100000
	// readTimeout bounds a read command.
	readTimeout = 5 * time.Second
)

// subscribeCommands subscribes to this gateway's command topics on the
// session's connection (clean sessions forget subscriptions).
func (s *session) subscribeCommands() {
	if s.u.cmd == nil {
		return
	}
	in := s.u.cmdIn
	tok := s.c.client.Subscribe(s.u.topicCmd, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case in <- cmdMsg{topic: m.Topic(), payload: append([]byte(nil), m.Payload()...)}:
		default:
			s.u.log.Warn("command dropped: too many waiting", "topic", m.Topic())
		}
	})
	if !tok.WaitTimeout(s.u.connectTimeout) || tok.Error() != nil {
		s.u.log.Error("cannot subscribe to commands", "topic", s.u.topicCmd, "err", tok.Error())
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for topic, qos := range st.Result() {
			if qos == 0x80 {
				s.u.log.Error("broker refused the command subscription (ACL?)", "topic", topic)
			}
		}
	}
}

// command authorizes, runs, records and answers one command.
func (s *session) command(m cmdMsg) {
	name := m.topic[strings.LastIndexByte(m.topic, '/')+1:]
	if len(name) > 64 {
		name = name[:64]
	}
	v := s.u.cmd.authorize(name, m.payload)
	if v.result == "ok" {
		v = s.run(name, v)
	}
	if err := s.u.cmd.record(v, name); err != nil {
		s.u.log.Error("command not recorded", "command", name, "err", err)
	}
	s.u.log.Info("command", "command", name, "id", v.body.ID, "by", v.body.By, "result", v.result, "code", v.code, "message", v.message)
	command := v.body.Command
	if command == "" {
		command = name
	}
	if command == "" {
		command = "?"
	}
	reply := ReplyMessage{
		V: PayloadVersion, Gateway: s.u.enc.gateway, Enterprise: s.u.enc.enterprise,
		ID: v.body.ID, Command: command, Time: FormatTime(time.Now()),
		Result: v.result, Code: v.code, Message: v.message, Data: v.data,
	}
	b, err := json.Marshal(reply)
	if err != nil {
		s.u.log.Error("reply does not encode", "err", err)
		return
	}
	// Not tracked: a reply lost with the connection is not resent; the
	// event recorded above is, and says the same.
	s.c.client.Publish(s.u.topicReply, 1, false, b)
}

// run carries out an authorized command and fills in the outcome.
func (s *session) run(name string, v verdict) verdict {
	fail := func(code, format string, args ...any) verdict {
		v.result, v.code, v.message = "failed", code, fmt.Sprintf(format, args...)
		return v
	}
	ok := func(format string, args ...any) verdict {
		v.result, v.code, v.message = "ok", "", fmt.Sprintf(format, args...)
		return v
	}
	opts := s.u.cmd.opts
	switch name {
	case "status":
		s.publishStatus(StateOnline, "")
		return ok("status published")
	case "resend":
		var a struct {
			Stream string `json:"stream"`
			First  uint64 `json:"first"`
			Last   uint64 `json:"last"`
		}
		if err := strictJSON(v.body.Args, &a); err != nil || a.First == 0 || a.Last < a.First || (a.Stream != "data" && a.Stream != "event") {
			return fail(CodeBadArgs, `args must be {"stream":"data"|"event","first":N,"last":M} with 1 <= N <= M`)
		}
		if a.Last-a.First >= maxResend {
			return fail(CodeBadArgs, "at most %d records per resend", maxResend)
		}
		n, first, last := s.resend(a.Stream, a.First, a.Last)
		if n == 0 {
			return fail(CodeNotFound, "no record of %s %d..%d is in the buffer (records are deleted once the broker acknowledged them)", a.Stream, a.First, a.Last)
		}
		v = ok("re-sent %d records of %s %d..%d", n, a.Stream, first, last)
		v.data = map[string]any{"stream": a.Stream, "records": n, "first": first, "last": last}
		return v
	case "read":
		var a struct {
			Tag string `json:"tag"`
		}
		if err := strictJSON(v.body.Args, &a); err != nil || a.Tag == "" {
			return fail(CodeBadArgs, `args must be {"tag":"LT-101"}`)
		}
		if opts.Reader == nil {
			return fail(CodeNotSupported, "read is not supported yet by this gateway")
		}
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		smp, err := opts.Reader.ReadTag(ctx, a.Tag)
		if errors.Is(err, ErrNotSupported) {
			return fail(CodeNotSupported, "read %s: %v", a.Tag, err)
		}
		if err != nil {
			return fail(CodeFailed, "read %s: %v", a.Tag, err)
		}
		v = ok("read %s", a.Tag)
		v.data = map[string]any{"tag": a.Tag, "quality": smp.Quality.String(), "time": FormatTime(smp.Time)}
		if smp.Quality != model.Bad && isFinite(smp.Value) {
			v.data["value"] = smp.Value
		}
		if smp.Reason != "" {
			v.data["reason"] = smp.Reason
		}
		return v
	case "ack":
		var a struct {
			Tag   string `json:"tag"`
			Level string `json:"level"`
		}
		if err := strictJSON(v.body.Args, &a); err != nil || a.Tag == "" {
			return fail(CodeBadArgs, `args must be {"tag":"LT-101","level":"hh"}`)
		}
		if opts.Acker == nil {
			return fail(CodeNotSupported, "alarm acknowledgement is not supported yet by this gateway")
		}
		err := opts.Acker.Ack(a.Tag, a.Level, v.body.By)
		if errors.Is(err, ErrNotSupported) {
			return fail(CodeNotSupported, "ack %s %s: %v", a.Tag, a.Level, err)
		}
		if err != nil {
			return fail(CodeFailed, "ack %s %s: %v", a.Tag, a.Level, err)
		}
		return ok("alarm %s %s acknowledged by %s", a.Tag, a.Level, v.body.By)
	}
	return fail(CodeUnknownCommand, "unknown command %q", name)
}

// resend publishes the records of stream first..last still in the buffer
// again, marked as replayed, without tracking them: their normal delivery
// (and acknowledgement) goes on unchanged. It returns how many were sent.
func (s *session) resend(stream string, first, last uint64) (n int, lo, hi uint64) {
	st := model.StreamData
	if stream == "event" {
		st = model.StreamEvent
	}
	after := first - 1
	for after < last {
		recs, err := s.u.src.Read(st, after, s.u.batchMax)
		if err != nil {
			s.u.log.Error("resend: buffer read failed", "err", err)
			break
		}
		for len(recs) > 0 && recs[len(recs)-1].Seq > last {
			recs = recs[:len(recs)-1]
		}
		if len(recs) == 0 {
			break
		}
		if lo == 0 {
			lo = recs[0].Seq
		}
		hi = recs[len(recs)-1].Seq
		s.publishAgain(st, recs)
		n += len(recs)
		after = hi
	}
	return n, lo, hi
}
