package uplink

import (
	"time"

	"hazgate/internal/model"
)

// A PUBACK proves that the broker has a message, not that the platform
// got it. Brokers acknowledge before they forward (mochi-mqtt writes the
// PUBACK first; Mosquitto forwards in a later turn of its loop), so a
// broker that dies right after acknowledging, or a broker without
// persistence that restarts, takes acknowledged but undelivered messages
// with it; the records are already gone from the gateway's buffer. The
// uplink therefore remembers the last messages acknowledged on a
// connection and, after that connection is lost, publishes them once more
// on the next one, marked as replayed. That costs a few duplicates per
// reconnection, which the platform drops by sequence number (§4.2 of
// docs/uplink.md); an orderly shutdown resends nothing.
const (
	// recentWindow: messages acknowledged this long before the newest
	// acknowledgement (of either stream) are sent again. Measured from the
	// newest PUBACK, not from when the loss was noticed: a broker that
	// vanishes silently is noticed only at the keep-alive timeout, and
	// nothing is acknowledged in between.
	recentWindow = 2 * time.Second
	// recentMaxRecords bounds one stream's tail, whatever inflight and
	// batch_max allow (about 6 MB of records).
	recentMaxRecords = 20000
)

// recentAcks is one stream's tail of acknowledged messages, in the order
// of their PUBACKs. Only Run's goroutine touches it.
type recentAcks struct {
	msgs    []ackedMsg
	records int // in msgs
	max     int // messages kept at most: the in-flight window
}

type ackedMsg struct {
	at   time.Time
	recs []model.Record
}

// add remembers a message acknowledged at t and forgets what is now
// outside the window or beyond the caps (the newest message is kept).
func (r *recentAcks) add(t time.Time, recs []model.Record) {
	r.msgs = append(r.msgs, ackedMsg{at: t, recs: recs})
	r.records += len(recs)
	drop := 0
	for drop < len(r.msgs)-1 && (len(r.msgs)-drop > r.max || r.records > recentMaxRecords || t.Sub(r.msgs[drop].at) > recentWindow) {
		r.records -= len(r.msgs[drop].recs)
		drop++
	}
	if drop > 0 {
		n := copy(r.msgs, r.msgs[drop:])
		clear(r.msgs[n:])
		r.msgs = r.msgs[:n]
	}
}

// tail returns the messages acknowledged at or after since, in sequence
// order: PUBACKs may come out of order, the resend goes out in order.
func (r *recentAcks) tail(since time.Time) [][]model.Record {
	out := make([][]model.Record, 0, len(r.msgs))
	for _, m := range r.msgs {
		if !m.at.Before(since) {
			out = append(out, m.recs)
		}
	}
	for i := 1; i < len(out); i++ { // insertion sort: nearly sorted, ≤ inflight
		for j := i; j > 0 && out[j][0].Seq < out[j-1][0].Seq; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// resendRecent, at the start of a connection that follows a lost one,
// publishes again the messages the previous connection acknowledged last.
// They are not tracked: their records left the buffer with the first
// PUBACK, so a PUBACK adds nothing, and a loss costs nothing that was not
// lost already (the tail stays for the next connection).
//
// Order: a message at or below the resume point goes out at once, before
// anything of this connection. One above it (acknowledged out of order,
// after an earlier message that was not) is held until the connection's
// own publishing passes its sequence numbers (releaseHeld), so that a
// stream's messages still leave in ascending order.
func (s *session) resendRecent() {
	if !s.u.resendDue {
		return
	}
	s.u.resendDue = false
	since := s.u.lastAck.Add(-recentWindow)
	var events, samples int
	for _, stream := range []model.Stream{model.StreamEvent, model.StreamData} {
		for _, recs := range s.u.recent[stream].tail(since) {
			if recs[len(recs)-1].Seq <= s.acked[stream] {
				s.sendAcknowledged(stream, recs)
			} else {
				s.held[stream] = append(s.held[stream], recs)
			}
			if stream == model.StreamEvent {
				events += len(recs)
			} else {
				samples += len(recs)
			}
		}
	}
	if events+samples > 0 {
		s.u.log.Info("sending the last acknowledged records again: the previous connection was lost, and a broker may lose what it acknowledged but had not delivered yet",
			"events", events, "samples", samples)
	}
}

// releaseHeld publishes the held messages of stream whose records come
// before seq; all of them when seq is 0 (nothing is left to publish before
// them).
func (s *session) releaseHeld(stream model.Stream, seq uint64) {
	h := s.held[stream]
	n := 0
	for n < len(h) && (seq == 0 || h[n][0].Seq < seq) {
		s.sendAcknowledged(stream, h[n])
		h[n] = nil
		n++
	}
	s.held[stream] = h[n:]
}

// sendAcknowledged publishes an acknowledged message again and counts it.
func (s *session) sendAcknowledged(stream model.Stream, recs []model.Record) {
	s.publishAgain(stream, recs)
	s.u.mu.Lock()
	s.u.stats.ResentRecords += uint64(len(recs))
	s.u.mu.Unlock()
}

// publishAgain publishes consecutive records of one stream once more,
// untracked: data as one message marked as replayed, events one message
// each (as the first time).
func (s *session) publishAgain(stream model.Stream, recs []model.Record) {
	if stream == model.StreamEvent {
		for i := range recs {
			s.c.client.Publish(s.u.topicEvent, 1, false, s.u.eventPayload(&recs[i]))
		}
		return
	}
	s.c.client.Publish(s.u.topicData, 1, false, s.u.dataPayload(recs, true))
}

// eventPayload encodes one event message.
func (u *Uplink) eventPayload(r *model.Record) []byte {
	return u.enc.appendEvent(make([]byte, 0, 512), r)
}

// dataPayload encodes one data message of recs, compressed as configured.
func (u *Uplink) dataPayload(recs []model.Record, replay bool) []byte {
	payload := u.enc.appendDataReplay(make([]byte, 0, 128+len(recs)*192), recs, time.Now(), replay)
	return u.compress.compress(payload)
}
