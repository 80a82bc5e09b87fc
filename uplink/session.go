package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/model"
)

// flight is one data or event message awaiting its PUBACK.
type flight struct {
	stream      model.Stream
	first, last uint64
	recs        []model.Record // kept for a resend after a loss (recent.go)
	records     int
	tok         mqtt.Token
	sent        time.Time
	done        bool // PUBACK received on this connection
}

// session publishes over one connection. It lives on Run's goroutine,
// except for one small waiter per flight that reports the token's
// completion.
type session struct {
	u     *Uplink
	c     *conn
	acked *[len(model.Streams)]uint64 // shared with Run: survives the session

	next    [len(model.Streams)]uint64    // last sequence number read per stream
	events  []model.Record                // events read but not yet published
	pending [len(model.Streams)][]*flight // per stream, in publish order
	open    int                           // flights without completion

	// held are acknowledged messages to send again once this connection's
	// publishing has passed them (recent.go), per stream in order.
	held [len(model.Streams)][][]model.Record

	completions chan *flight
	stop        chan struct{} // closed when the session ends: waiters give up

	// A partial data batch held back to fill (batch_interval): the first
	// sequence number held, since when, and the timer that ends the wait.
	holdSeq   uint64
	holdSince time.Time
	holdTimer *time.Timer
	holdWake  <-chan time.Time // nil when nothing is held

	// Backlog pacing (replay_rate): a token bucket of samples.
	tokens    float64
	tokensAt  time.Time
	paceTimer *time.Timer
	paceWake  <-chan time.Time // nil when not waiting
	waiters   sync.WaitGroup
	progress  bool // at least one PUBACK
}

// errAckTimeout means the broker holds the connection but acknowledges nothing.
var errAckTimeout = errors.New("no PUBACK in time")

// serve runs one connection until it is lost or ctx ends. It reports
// whether any publish was acknowledged, which resets the back-off.
func (u *Uplink) serve(ctx context.Context, c *conn, acked *[len(model.Streams)]uint64) bool {
	s := &session{
		u: u, c: c, acked: acked,
		next:        *acked, // resume at the oldest unacknowledged record
		completions: make(chan *flight, u.inflight),
		stop:        make(chan struct{}),
	}
	u.connected.Store(true)
	u.mu.Lock()
	u.stats.Broker = c.broker
	u.mu.Unlock()
	u.log.Info("connected", "broker", c.broker, "resume_after_event", s.next[model.StreamEvent], "resume_after_data", s.next[model.StreamData])

	s.publishStatus(StateOnline, "") // birth
	s.subscribeCommands()
	s.resendRecent()
	err := s.loop(ctx)
	u.connected.Store(false)
	if ctx.Err() != nil {
		s.shutdown()
	} else {
		u.noteError(err)
		u.resendDue = true
		u.log.Warn("broker connection ended", "broker", c.broker, "err", err, "in_flight_forgotten", s.open)
		c.abort()
	}
	s.finish()
	return s.progress
}

func (s *session) loop(ctx context.Context) error {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	heartbeat := time.NewTicker(s.u.heartbeat)
	defer heartbeat.Stop()
	notify := s.u.src.Notify()
	for {
		if err := s.fill(); err != nil {
			return err
		}
		select {
		case f := <-s.completions:
			if err := s.complete(f); err != nil {
				return err
			}
			// Take every completion that is ready before refilling, so
			// that one fill publishes a run of messages.
			for more := true; more; {
				select {
				case f := <-s.completions:
					if err := s.complete(f); err != nil {
						return err
					}
				default:
					more = false
				}
			}
		case <-notify:
		case <-poll.C:
			if err := s.checkAckTimeout(); err != nil {
				return err
			}
		case <-heartbeat.C:
			s.publishStatus(StateOnline, "")
		case m := <-s.u.cmdIn: // nil channel when commands are off
			s.command(m)
		case <-s.holdWake: // a held partial batch is due
		case <-s.paceWake: // the backlog may go on
		case err := <-s.c.lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fill publishes until the in-flight window is full or nothing is left.
// Events always go first: before every data message the event stream is
// read again, so an alarm waits at most for one window of data messages.
func (s *session) fill() error {
	for s.open < s.u.inflight {
		if len(s.events) == 0 {
			recs, err := s.read(model.StreamEvent, s.u.inflight-s.open)
			if err != nil {
				return nil // logged; retried on the next wake-up
			}
			s.events = recs
		}
		if len(s.events) > 0 {
			r := &s.events[0]
			s.releaseHeld(model.StreamEvent, r.Seq)
			s.events = s.events[1:]
			s.publish(model.StreamEvent, []model.Record{*r}, s.u.topicEvent, s.u.eventPayload(r))
			continue
		}
		s.releaseHeld(model.StreamEvent, 0) // every event before them is out
		recs, err := s.read(model.StreamData, s.u.batchMax)
		if err != nil {
			return nil
		}
		if len(recs) == 0 {
			s.releaseHeld(model.StreamData, 0)
			return nil
		}
		s.releaseHeld(model.StreamData, recs[0].Seq)
		replay := recs[0].Seq <= s.u.sent[model.StreamData]
		if !replay && s.hold(recs) {
			return nil
		}
		if (replay || len(recs) == s.u.batchMax) && s.pace(len(recs)) {
			s.next[model.StreamData] = recs[0].Seq - 1 // read them again when due
			return nil
		}
		s.publish(model.StreamData, recs, s.u.topicData, s.u.dataPayload(recs, replay))
	}
	return nil
}

// read takes the next records of stream and advances the read position.
func (s *session) read(stream model.Stream, n int) ([]model.Record, error) {
	after := s.next[stream]
	recs, err := s.u.src.Read(stream, after, n)
	if err != nil {
		err = fmt.Errorf("read %s after %d: %w", stream, after, err)
		s.u.noteError(err)
		s.u.log.Error("buffer read failed", "err", err)
		return nil, err
	}
	// Guard the order guarantee against a source that breaks its contract.
	for len(recs) > 0 && recs[0].Seq <= after {
		recs = recs[1:]
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			recs = recs[:i]
			break
		}
		// A message never spans a hole, so that seq_last - seq_first + 1
		// is always its number of samples (docs/uplink.md §3.1). Holes are
		// records the buffer dropped (reported by a gap event) or, after a
		// restart, ones acknowledged out of order and already deleted.
		if recs[i].Seq != recs[i-1].Seq+1 {
			recs = recs[:i]
			break
		}
	}
	if len(recs) > 0 {
		s.next[stream] = recs[len(recs)-1].Seq
	}
	return recs, nil
}

// publish sends one message of consecutive records.
func (s *session) publish(stream model.Stream, recs []model.Record, topic string, payload []byte) {
	first, last, records := recs[0].Seq, recs[len(recs)-1].Seq, len(recs)
	f := &flight{stream: stream, first: first, last: last, records: records, recs: recs, sent: time.Now()}
	f.tok = s.c.client.Publish(topic, 1, false, payload)
	s.u.sent[stream] = max(s.u.sent[stream], last)
	s.pending[stream] = append(s.pending[stream], f)
	s.open++
	s.u.mu.Lock()
	s.u.stats.PublishedMsgs++
	s.u.stats.PublishedRecords += uint64(records)
	s.u.stats.InFlight = s.open
	s.u.mu.Unlock()

	s.waiters.Add(1)
	go func() {
		defer s.waiters.Done()
		select {
		case <-f.tok.Done():
		case <-s.stop:
			return
		}
		select {
		case s.completions <- f: // never blocks: capacity is the window
		case <-s.stop:
		}
	}()
}

// complete handles a finished publish. Only a token without error, on
// this connection, is proof that the broker has the message.
func (s *session) complete(f *flight) error {
	s.open--
	s.u.mu.Lock()
	s.u.stats.InFlight = s.open
	s.u.mu.Unlock()
	if err := f.tok.Error(); err != nil {
		return fmt.Errorf("publish %s %d..%d: %w", f.stream, f.first, f.last, err)
	}
	f.done = true
	s.progress = true
	s.u.lastAck = time.Now()
	s.u.recent[f.stream].add(s.u.lastAck, f.recs)
	f.recs = nil
	// PUBACKs may come out of order: each message's range is acknowledged
	// on its own, the resume point only over an unbroken run.
	s.u.src.Ack(f.stream, f.first, f.last)
	s.u.mu.Lock()
	s.u.stats.AckedMsgs++
	s.u.stats.AckedRecords += uint64(f.records)
	s.u.mu.Unlock()
	q := s.pending[f.stream]
	for len(q) > 0 && q[0].done {
		s.acked[f.stream] = q[0].last
		q[0] = nil
		q = q[1:]
	}
	s.pending[f.stream] = q
	return nil
}

// checkAckTimeout fails the connection when the oldest publish has waited
// too long for its PUBACK.
func (s *session) checkAckTimeout() error {
	for _, q := range s.pending {
		if len(q) > 0 && !q[0].done && time.Since(q[0].sent) > s.u.ackTimeout {
			return fmt.Errorf("%w: %s %d..%d waited %s", errAckTimeout, q[0].stream, q[0].first, q[0].last, s.u.ackTimeout)
		}
	}
	return nil
}

// publishStatus publishes a retained status message. Its delivery is not
// tracked: the next status or the will replaces it anyway.
func (s *session) publishStatus(state, reason string) mqtt.Token {
	payload := s.u.statusPayload(state, reason, s.c.broker, time.Now())
	return s.c.client.Publish(s.u.topicStatus, 1, true, payload)
}

// shutdown ends the session in order: it waits a little for outstanding
// PUBACKs, publishes the retained offline status and disconnects, which
// tells the broker to discard the will.
func (s *session) shutdown() {
	deadline := time.NewTimer(shutdownGrace)
	defer deadline.Stop()
wait:
	for s.open > 0 {
		select {
		case f := <-s.completions:
			if s.complete(f) != nil {
				break wait
			}
		case <-s.c.lost:
			s.c.abort()
			return
		case <-deadline.C:
			break wait
		}
	}
	tok := s.publishStatus(StateOffline, ReasonShutdown)
	if !tok.WaitTimeout(shutdownGrace) || tok.Error() != nil {
		s.u.log.Warn("offline status not acknowledged", "err", tok.Error())
	}
	s.c.client.Disconnect(250)
	s.u.log.Info("disconnected", "broker", s.c.broker)
}

// finish acknowledges what completed successfully in the meantime, then
// forgets everything else in flight: the next connection sends it again.
func (s *session) finish() {
	for more := true; more; {
		select {
		case f := <-s.completions:
			_ = s.complete(f)
		default:
			more = false
		}
	}
	close(s.stop)
	s.waiters.Wait()
	if s.holdTimer != nil {
		s.holdTimer.Stop()
	}
	if s.paceTimer != nil {
		s.paceTimer.Stop()
	}
	s.u.mu.Lock()
	s.u.stats.InFlight = 0
	s.u.mu.Unlock()
}

// hold decides whether a partial batch of new data waits to fill up
// (batch_interval). A held batch is put back (the read position goes back
// before it) and a timer wakes the loop when its wait is over. The wait is
// measured on the monotonic clock from when the batch's first record was
// first seen, so a wall-clock jump cannot stretch it. Backlog (a full
// batch) and replays never wait.
func (s *session) hold(recs []model.Record) bool {
	if s.u.batchInterval <= 0 || len(recs) >= s.u.batchMax {
		s.holdWake = nil
		return false
	}
	now := time.Now()
	if s.holdSeq != recs[0].Seq {
		s.holdSeq, s.holdSince = recs[0].Seq, now
	}
	left := s.u.batchInterval - now.Sub(s.holdSince)
	if left <= 0 {
		s.holdWake = nil
		return false
	}
	s.next[model.StreamData] = recs[0].Seq - 1 // read them again when due
	if s.holdTimer == nil {
		s.holdTimer = time.NewTimer(left)
	} else {
		s.holdTimer.Reset(left)
	}
	s.holdWake = s.holdTimer.C
	return true
}

// pace limits backlog (a full batch: more is waiting) and replayed data to
// replay_rate samples per second, so that draining days of backlog over a
// narrow link leaves room for everything else. It reports whether the
// batch of n samples must wait; then a timer wakes the loop. Events are
// never paced: they go before any data anyway.
func (s *session) pace(n int) bool {
	rate := s.u.replayRate
	if rate <= 0 {
		return false
	}
	burst := max(float64(s.u.batchMax), rate)
	now := time.Now()
	if s.tokensAt.IsZero() {
		s.tokens = burst
	} else {
		s.tokens = min(burst, s.tokens+now.Sub(s.tokensAt).Seconds()*rate)
	}
	s.tokensAt = now
	if s.tokens >= float64(n) {
		s.tokens -= float64(n)
		s.paceWake = nil
		return false
	}
	wait := time.Duration((float64(n) - s.tokens) / rate * float64(time.Second))
	if s.paceTimer == nil {
		s.paceTimer = time.NewTimer(wait)
	} else {
		s.paceTimer.Reset(wait)
	}
	s.paceWake = s.paceTimer.C
	return true
}
