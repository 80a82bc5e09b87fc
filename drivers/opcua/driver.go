// Package opcua is hazgate's OPC UA client driver (github.com/gopcua/opcua
// v0.8.0). It reads a device's tags by polling (one batched Read per
// device interval) or through a subscription (monitored items whose
// latest values are passed on at every interval), over a session with
// security None or a signed and encrypted channel, logged in anonymously
// or with a user name.
//
// The driver owns its reconnects instead of gopcua's auto-reconnect,
// which does not always restore subscriptions (gopcua #813): a lost
// session is dropped as a whole, and the next connect builds everything
// again in a fixed order (endpoint, trust, session, subscription, every
// monitored item). See session.go.
package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Driver acquires every tag of one OPC UA device. Its methods are safe for
// concurrent use.
type Driver struct {
	dev    config.Device
	opts   config.OPCUA
	log    *slog.Logger
	points []point
	names  []string
	polled []int // indexes of points read by polling, in config order
	subbed []int // indexes of points read through the subscription

	// life is cancelled by Close: it stops a connect in progress.
	lifeMu sync.Mutex
	life   context.Context
	stop   context.CancelFunc

	mu       sync.Mutex // guards everything below and serialises requests
	sess     *session   // nil while disconnected
	dialing  *dial      // the connect in progress, nil when none
	failures int        // connects failed in a row
	nextDial time.Time  // no connect before this (back-off)
	failing  bool       // for logging transitions only
	timeouts int        // requests timed out in a row on the current session

	closing sync.WaitGroup // sessions being closed in the background

	notified atomic.Uint64 // monitored item values received, all sessions
}

// dial is one connect running in the background. Its result is taken by
// a poll (collectLocked), or, once Close abandoned it, closed by the
// connect itself: whichever comes second closes the session.
type dial struct {
	done chan struct{}

	mu        sync.Mutex
	sess      *session
	err       error
	abandoned bool
}

// point is one tag as the driver acquires it.
type point struct {
	tag  config.Tag
	node *ua.NodeID
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Writer = (*Driver)(nil)
)

// ReasonSubscriptionPending is the reason of a subscribed tag whose first
// value has not arrived since the session was (re)established.
const ReasonSubscriptionPending = "waiting for the first value of the subscription"

// New checks the device's config and prepares its requests. It does not
// connect: the first Poll does. dev must come from config.Load (defaults
// applied).
func New(dev config.Device, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dev.Address == "" {
		return nil, fmt.Errorf("opcua device %q: no endpoint URL", dev.Name)
	}
	d := &Driver{dev: dev, log: log.With("endpoint", dev.Address)}
	if dev.OPCUA != nil {
		d.opts = *dev.OPCUA
	}
	if d.opts.SecurityPolicy == "" {
		d.opts.SecurityPolicy = config.OPCUAPolicyNone
	}
	if d.opts.SecurityMode == "" {
		d.opts.SecurityMode = config.OPCUAModeNone
		if d.opts.SecurityPolicy != config.OPCUAPolicyNone {
			d.opts.SecurityMode = config.OPCUAModeSignAndEncrypt
		}
	}
	if d.opts.MaxNodesPerRead <= 0 {
		d.opts.MaxNodesPerRead = config.DefaultOPCUAMaxNodesPerRead
	}
	if d.opts.SessionTimeout <= 0 {
		d.opts.SessionTimeout = config.DefaultOPCUASessionTimeout
	}
	if d.opts.PublishInterval <= 0 {
		d.opts.PublishInterval = dev.Interval
	}
	if d.opts.ApplicationURI == "" {
		d.opts.ApplicationURI = "urn:hazgate:" + dev.Name
	}
	for i, tag := range dev.Tags {
		id, err := config.ParseNodeID(tag.Node)
		if err != nil {
			return nil, fmt.Errorf("opcua device %q: tag %q: %w", dev.Name, tag.Name, err)
		}
		d.points = append(d.points, point{tag: tag, node: uaNodeID(id)})
		d.names = append(d.names, tag.Name)
		if tag.OPCUA != nil && tag.OPCUA.Subscribe {
			d.subbed = append(d.subbed, i)
		} else {
			d.polled = append(d.polled, i)
		}
	}
	d.life, d.stop = context.WithCancel(context.Background())
	return d, nil
}

// uaNodeID converts a node id the config parsed into gopcua's form.
func uaNodeID(id config.NodeID) *ua.NodeID {
	switch id.Kind {
	case 'i':
		return ua.NewNumericNodeID(id.Namespace, id.Numeric)
	case 'g':
		return ua.NewGUIDNodeID(id.Namespace, id.Text)
	case 'b':
		raw, _ := decodeBase64(id.Text) // ParseNodeID checked it
		return ua.NewByteStringNodeID(id.Namespace, raw)
	}
	return ua.NewStringNodeID(id.Namespace, id.Text)
}

// Name is the device name.
func (d *Driver) Name() string { return d.dev.Name }

// Tags lists the tag names in config order, the order of Poll's samples.
func (d *Driver) Tags() []string { return append([]string(nil), d.names...) }

// Poll returns one sample per tag, in the order of Tags.
//
//   - Without a session it connects first (in the background, so that a
//     slow handshake is not cut short by one poll's deadline); while that
//     fails every tag is Bad with the reason and Poll returns the error.
//   - Polled tags are read in one Read request per MaxNodesPerRead nodes.
//     A node's own bad status (BadNodeIdUnknown after a server lost it)
//     marks that tag only.
//   - Subscribed tags report the latest value received; the session is
//     proven alive by the Read (or, with no polled tags, by reading the
//     server's state).
//   - A failed request or a broken subscription drops the session: every
//     tag is Bad and Poll returns the error, so the scheduler backs off and
//     the next Poll reconnects and recreates every monitored item.
func (d *Driver) Poll(ctx context.Context) ([]model.Sample, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.sessionLocked(ctx)
	if err != nil {
		return drivers.BadSamples(d.dev.Name, d.names, reasonOf(err), time.Now().UTC()), err
	}
	out := make([]model.Sample, len(d.points))
	for i, p := range d.points {
		out[i] = model.Sample{Tag: p.tag.Name, Device: d.dev.Name, Quality: model.Bad, Reason: model.ReasonNotPolled}
	}
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if t := time.Duration(d.dev.Timeout); t > 0 {
		rctx, cancel = context.WithTimeout(ctx, t)
	}
	err = d.readLocked(rctx, s, out)
	cancel()
	if err != nil && isTimeout(err) && d.timeouts+1 < maxTimeouts {
		// One slow answer is not a lost session: the channel matches
		// answers to requests by id, so a late one cannot be taken for
		// the next. Reconnecting (RSA handshakes, every monitored item)
		// would cost the server more than waiting.
		d.timeouts++
		now := time.Now().UTC()
		for i := range out {
			out[i] = model.Sample{Tag: out[i].Tag, Device: d.dev.Name, Quality: model.Bad, Reason: model.ReasonTimeout, Time: now}
		}
		err = fmt.Errorf("opcua device %q at %s: %w", d.dev.Name, d.dev.Address, err)
		d.logOutcome(err)
		return out, err
	}
	if errors.Is(err, errTooMany) {
		now := time.Now().UTC()
		for i := range out {
			out[i] = model.Sample{Tag: out[i].Tag, Device: d.dev.Name, Quality: model.Bad, Reason: model.ReasonException + ": " + err.Error(), Time: now}
		}
		err = fmt.Errorf("opcua device %q at %s: %w", d.dev.Name, d.dev.Address, err)
		d.logOutcome(err)
		return out, err
	}
	if err != nil {
		return d.lostLocked(out, err)
	}
	d.timeouts = 0
	if err := s.latest(d.subbed, out); err != nil {
		return d.lostLocked(out, err)
	}
	d.logOutcome(nil)
	return out, nil
}

// errTooMany marks a Read the server refused for its size.
var errTooMany = errors.New("the server refused that many nodes in one Read (BadTooManyOperations)")

// maxTimeouts is how many requests in a row may time out before the
// session is taken for lost and rebuilt.
const maxTimeouts = 3

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ua.StatusBadTimeout)
}

// lostLocked drops the session after a failure: every sample not yet
// filled is bad with the failure's reason.
func (d *Driver) lostLocked(out []model.Sample, err error) ([]model.Sample, error) {
	d.dropLocked()
	now := time.Now().UTC()
	reason := reasonOf(err)
	for i := range out {
		out[i] = model.Sample{Tag: out[i].Tag, Device: d.dev.Name, Quality: model.Bad, Reason: reason, Time: now}
	}
	err = fmt.Errorf("opcua device %q at %s: %w", d.dev.Name, d.dev.Address, err)
	d.logOutcome(err)
	return out, err
}

// readLocked reads the polled tags, in batches of MaxNodesPerRead. With no
// polled tags it reads the server's state, which proves the session alive.
func (d *Driver) readLocked(ctx context.Context, s *session, out []model.Sample) error {
	if len(d.polled) == 0 {
		return s.alive(ctx)
	}
	for start := 0; start < len(d.polled); start += d.opts.MaxNodesPerRead {
		batch := d.polled[start:min(start+d.opts.MaxNodesPerRead, len(d.polled))]
		results, err := d.readBatch(ctx, s, batch)
		if err != nil {
			return err
		}
		at := time.Now().UTC()
		for k, i := range batch {
			out[i] = d.sample(i, results[k], at)
		}
	}
	return nil
}

// readBatch reads the values of the points batch in one Read request.
func (d *Driver) readBatch(ctx context.Context, s *session, batch []int) ([]*ua.DataValue, error) {
	req := &ua.ReadRequest{
		MaxAge:             0,
		TimestampsToReturn: ua.TimestampsToReturnSource,
		NodesToRead:        make([]*ua.ReadValueID, len(batch)),
	}
	for k, i := range batch {
		req.NodesToRead[k] = &ua.ReadValueID{NodeID: d.points[i].node, AttributeID: ua.AttributeIDValue}
	}
	res, err := s.client.Read(ctx, req)
	tooMany := errors.Is(err, ua.StatusBadTooManyOperations) || (err == nil && res.ResponseHeader.ServiceResult == ua.StatusBadTooManyOperations)
	if tooMany && len(batch) > 1 {
		// The server reads fewer nodes at once than configured: ask
		// for half as many from the next poll on; the session is fine.
		d.opts.MaxNodesPerRead = max(1, len(batch)/2)
		d.log.Warn("opcua server refused a Read of this many nodes; reading fewer per request", "refused", len(batch), "now", d.opts.MaxNodesPerRead)
		return nil, fmt.Errorf("read %d nodes: %w (max_nodes_per_read lowered to %d)", len(batch), errTooMany, d.opts.MaxNodesPerRead)
	}
	if err != nil {
		return nil, fmt.Errorf("read %d nodes: %w", len(batch), err)
	}
	if sr := res.ResponseHeader.ServiceResult; sr != ua.StatusOK {
		return nil, fmt.Errorf("read %d nodes: %w", len(batch), sr)
	}
	if len(res.Results) != len(batch) {
		return nil, fmt.Errorf("read %d nodes: server answered %d results", len(batch), len(res.Results))
	}
	return res.Results, nil
}

// sample turns one DataValue into the tag's sample. The server's source
// timestamp is kept when it sent one; otherwise received is used.
func (d *Driver) sample(i int, dv *ua.DataValue, received time.Time) model.Sample {
	p := &d.points[i]
	smp := model.Sample{Tag: p.tag.Name, Device: d.dev.Name, Time: received}
	if dv == nil {
		smp.Quality, smp.Reason = model.Bad, model.ReasonDecode+": no data value"
		return smp
	}
	if !dv.SourceTimestamp.IsZero() {
		smp.Time = dv.SourceTimestamp.UTC()
	}
	q, reason := Quality(dv.Status)
	if q == model.Bad {
		smp.Quality, smp.Reason = q, reason
		return smp
	}
	raw, err := number(dv.Value)
	if err != nil {
		smp.Quality, smp.Reason = model.Bad, model.ReasonDecode+": "+err.Error()
		return smp
	}
	smp.Value, smp.Quality, smp.Reason = drivers.Scale(raw, &p.tag)
	if smp.Quality == model.Good && q == model.Uncertain {
		smp.Quality, smp.Reason = q, reason
	}
	return smp
}

// Notifications is how many monitored item values the driver has received
// through subscriptions since it was made (every value, also those a
// poll did not pass on because a later one replaced it).
func (d *Driver) Notifications() uint64 { return d.notified.Load() }

// Close ends the session and stops a connect in progress. Poll may be
// called again afterwards and reconnects.
func (d *Driver) Close() error {
	d.lifeMu.Lock()
	d.stop()
	d.lifeMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if dl := d.dialing; dl != nil {
		// gopcua's HEL/ACK handshake heeds only the context's deadline,
		// not its cancellation, so the connect may run on for a while
		// against a silent server: it closes what it opened itself.
		d.dialing = nil
		dl.mu.Lock()
		dl.abandoned = true
		s := dl.sess
		dl.sess = nil
		dl.mu.Unlock()
		if s != nil {
			s.close()
		}
	}
	d.dropLocked()
	d.closing.Wait()
	d.failures, d.nextDial = 0, time.Time{}
	d.lifeMu.Lock()
	d.life, d.stop = context.WithCancel(context.Background())
	d.lifeMu.Unlock()
	return nil
}

// dropLocked forgets the session and closes it in the background: saying
// goodbye to a server that is gone can take closeTimeout, longer than a
// poll may.
func (d *Driver) dropLocked() {
	s := d.sess
	if s == nil {
		return
	}
	d.sess, d.timeouts = nil, 0
	d.closing.Add(1)
	go func() {
		defer d.closing.Done()
		s.close()
	}()
}

func (d *Driver) logOutcome(err error) {
	switch {
	case err != nil && !d.failing:
		d.failing = true
		d.log.Warn("opcua device failed", "err", err)
	case err != nil:
		d.log.Debug("opcua device failed", "err", err)
	case d.failing:
		d.failing = false
		d.log.Info("opcua device answers again")
	}
}

// reasonOf is the Bad reason for a failure of the whole device.
func reasonOf(err error) string {
	var code ua.StatusCode
	switch {
	case errors.Is(err, errConnecting):
		return model.ReasonConnection + ": still connecting"
	case errors.Is(err, context.DeadlineExceeded):
		return model.ReasonTimeout
	case errors.Is(err, context.Canceled):
		return model.ReasonNotPolled
	case errors.As(err, &code):
		return model.ReasonConnection + ": " + statusName(code)
	}
	return model.ReasonConnection + ": " + err.Error()
}
