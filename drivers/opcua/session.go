package opcua

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// connectTimeout bounds one whole connect: endpoints, secure channel,
// session, subscription and monitored items. RSA handshakes on a loaded
// ARM gateway take a while, so it is generous; it runs in the background
// and does not hold up other devices.
const connectTimeout = 20 * time.Second

// closeTimeout bounds the goodbye to a server that may be gone.
const closeTimeout = 2 * time.Second

// session is one established OPC UA session with, when the device has
// subscribed tags, its subscription and the goroutine that receives its
// notifications.
type session struct {
	d      *Driver
	client *opcua.Client
	sub    *opcua.Subscription

	stopDrain context.CancelFunc
	drained   chan struct{}

	mu        sync.Mutex
	heartbeat heartbeat            // the server clock's notifications
	first     chan struct{}        // closed when every accepted item has sent a value
	waiting   int                  // accepted items without a value yet
	values    map[int]model.Sample // latest sample per subscribed point
	refused   map[int]string       // monitored items the server refused: reason
	broken    error                // the subscription failed: the session must go
}

// sessionLocked returns the live session, connecting first when there is
// none. A connect runs in its own goroutine under the driver's life
// context, so a poll deadline does not cut a slow handshake short; the poll
// waits for it as long as its ctx allows and a later poll collects it.
func (d *Driver) sessionLocked(ctx context.Context) (*session, error) {
	if s := d.sess; s != nil {
		err := s.health()
		if err == nil {
			return s, nil
		}
		d.log.Warn("opcua session lost; reconnecting", "err", err)
		d.dropLocked()
	}
	if d.dialing == nil {
		if wait := time.Until(d.nextDial); wait > 0 {
			return nil, fmt.Errorf("opcua device %q at %s: reconnect in %s: %w", d.dev.Name, d.dev.Address, wait.Round(time.Millisecond), errBackoff)
		}
		d.lifeMu.Lock()
		life := d.life
		d.lifeMu.Unlock()
		dl := &dial{done: make(chan struct{})}
		d.dialing = dl
		go func() {
			defer close(dl.done)
			cctx, cancel := context.WithTimeout(life, connectTimeout)
			defer cancel()
			s, err := d.connect(cctx)
			dl.mu.Lock()
			defer dl.mu.Unlock()
			if dl.abandoned {
				if s != nil {
					s.close()
				}
				return
			}
			dl.sess, dl.err = s, err
		}()
	}
	select {
	case <-d.dialing.done:
		return d.sess, d.collectLocked()
	case <-ctx.Done():
		return nil, fmt.Errorf("opcua device %q at %s: %w (%w)", d.dev.Name, d.dev.Address, errConnecting, ctx.Err())
	}
}

// errBackoff marks a poll skipped because the last connect failed recently.
var errBackoff = errors.New("waiting after a failed connect")

// errConnecting marks a poll that ended while the connect went on.
var errConnecting = drivers.ErrConnecting

// collectLocked takes the result of a finished connect.
func (d *Driver) collectLocked() error {
	r := d.dialing
	d.dialing = nil
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		d.failures++
		wait := time.Duration(d.dev.Interval)
		for i := 1; i < d.failures && wait < time.Duration(d.dev.BackoffMax); i++ {
			wait *= 2
		}
		if bm := time.Duration(d.dev.BackoffMax); bm > 0 && wait > bm {
			wait = bm
		}
		d.nextDial = time.Now().Add(wait)
		return r.err
	}
	d.failures, d.nextDial = 0, time.Time{}
	d.sess = r.sess
	d.log.Info("opcua session established", "policy", d.opts.SecurityPolicy, "mode", d.opts.SecurityMode, "subscribed", len(d.subbed), "polled", len(d.polled))
	return nil
}

// connect runs the steps of a new session in order: pick the endpoint
// that matches the configured policy and mode, check the server's
// certificate against the trust list, open the secure channel and the
// session (logging in), then create the subscription and every monitored
// item. A failure at any step closes what was opened.
func (d *Driver) connect(ctx context.Context) (*session, error) {
	where := fmt.Sprintf("endpoint %s (security %s/%s)", d.dev.Address, d.opts.SecurityPolicy, d.opts.SecurityMode)
	eps, err := opcua.GetEndpoints(ctx, d.dev.Address, opcua.DialTimeout(connectTimeout/2))
	if err != nil {
		return nil, fmt.Errorf("%s: get endpoints: %w", where, err)
	}
	ep, err := selectEndpoint(eps, d.opts.SecurityPolicy, d.opts.SecurityMode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	opts := []opcua.Option{
		opcua.AutoReconnect(false), // we rebuild the whole session ourselves (gopcua #813)
		opcua.SecurityPolicy(ua.SecurityPolicyURIPrefix + d.opts.SecurityPolicy),
		opcua.SecurityModeString(d.opts.SecurityMode),
		opcua.SessionTimeout(time.Duration(d.opts.SessionTimeout)),
		opcua.RequestTimeout(connectTimeout / 2),
		opcua.DialTimeout(connectTimeout / 2),
		opcua.ApplicationName("hazgate"),
		opcua.ApplicationURI(d.opts.ApplicationURI),
		opcua.ProductURI("urn:hazgate"),
		opcua.SessionName("hazgate " + d.dev.Name),
	}
	if d.opts.SecurityPolicy != config.OPCUAPolicyNone {
		if err := d.trust(ep.ServerCertificate); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		cert, key, err := applicationCertificate(d.opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		opts = append(opts, opcua.Certificate(cert), opcua.PrivateKey(key))
	}
	login := "anonymously"
	switch {
	case d.opts.UserCertFile != "":
		cert, err := readCertificate(d.opts.UserCertFile)
		if err != nil {
			return nil, fmt.Errorf("%s: user certificate: %w", where, err)
		}
		key, err := readKey(d.opts.UserKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: user certificate: %w", where, err)
		}
		login = "with user certificate " + d.opts.UserCertFile
		opts = append(opts, opcua.AuthCertificate(cert), opcua.AuthPrivateKey(key), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeCertificate))
	case d.opts.Username != "":
		pass, err := password(d.opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		login = fmt.Sprintf("as user %q", d.opts.Username)
		opts = append(opts, opcua.AuthUsername(d.opts.Username, pass), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName))
	default:
		opts = append(opts, opcua.AuthAnonymous(), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous))
	}
	c, err := opcua.NewClient(d.dev.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := c.Connect(ctx); err != nil {
		closeClient(c)
		if isLoginRefused(err) && d.opts.Username != "" {
			return nil, fmt.Errorf("%s: login %s refused: check the user name and the password (%s): %w", where, login, passwordSource(d.opts), err)
		}
		if isLoginRefused(err) {
			return nil, fmt.Errorf("%s: login %s refused (the server must trust the user certificate, or allow this login): %w", where, login, err)
		}
		return nil, fmt.Errorf("%s: connect %s: %w", where, login, err)
	}
	s := &session{d: d, client: c, values: map[int]model.Sample{}, refused: map[int]string{}, first: make(chan struct{}), waiting: -1}
	if len(d.subbed) > 0 {
		if err := s.subscribe(ctx); err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return s, nil
}

// selectEndpoint finds the server's endpoint for policy and mode (short
// names), or says what the server offers instead.
func selectEndpoint(eps []*ua.EndpointDescription, policy, mode string) (*ua.EndpointDescription, error) {
	uri := ua.SecurityPolicyURIPrefix + policy
	want := ua.MessageSecurityModeFromString(mode)
	var offered []string
	for _, ep := range eps {
		if ep.SecurityPolicyURI == uri && ep.SecurityMode == want {
			return ep, nil
		}
		offered = append(offered, strings.TrimPrefix(ep.SecurityPolicyURI, ua.SecurityPolicyURIPrefix)+"/"+strings.TrimPrefix(ep.SecurityMode.String(), "MessageSecurityMode"))
	}
	return nil, fmt.Errorf("the server offers no endpoint with security %s/%s (it offers: %s)", policy, mode, strings.Join(offered, ", "))
}

func isLoginRefused(err error) bool {
	for _, c := range []ua.StatusCode{ua.StatusBadUserAccessDenied, ua.StatusBadIdentityTokenRejected, ua.StatusBadIdentityTokenInvalid} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// subscribe creates the subscription and one monitored item per
// subscribed tag, whose client handle is the tag's index. An item the
// server refuses (unknown node, bad filter) marks that tag bad; the others
// go on.
func (s *session) subscribe(ctx context.Context) error {
	d := s.d
	notes := make(chan *opcua.PublishNotificationData, 64)
	sub, err := s.client.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: time.Duration(d.opts.PublishInterval)}, notes)
	if err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	s.sub = sub
	dctx, stop := context.WithCancel(context.Background())
	s.stopDrain, s.drained = stop, make(chan struct{})
	go s.drain(dctx, notes)

	items := make([]*ua.MonitoredItemCreateRequest, len(d.subbed), len(d.subbed)+1)
	for k, i := range d.subbed {
		items[k] = monitoredItem(d.points[i], uint32(i), d.dev.Interval)
	}
	items = append(items, heartbeatItem(d.heartbeatHandle(), d.opts.PublishInterval))
	// Servers limit the items per call (MaxMonitoredItemsPerCall): create
	// them in calls of max_nodes_per_read.
	var results []*ua.MonitoredItemCreateResult
	for start := 0; start < len(items); start += d.opts.MaxNodesPerRead {
		chunk := items[start:min(start+d.opts.MaxNodesPerRead, len(items))]
		res, err := sub.Monitor(ctx, ua.TimestampsToReturnSource, chunk...)
		if err != nil {
			return fmt.Errorf("create %d monitored items: %w", len(chunk), err)
		}
		if sr := res.ResponseHeader.ServiceResult; sr != ua.StatusOK {
			return fmt.Errorf("create %d monitored items: %w", len(chunk), sr)
		}
		if len(res.Results) != len(chunk) {
			return fmt.Errorf("create %d monitored items: server answered %d results", len(chunk), len(res.Results))
		}
		results = append(results, res.Results...)
	}
	s.mu.Lock()
	s.heartbeat.created = time.Now()
	s.heartbeat.accepted = results[len(d.subbed)].StatusCode == ua.StatusOK
	for k, r := range results[:len(d.subbed)] {
		if q, reason := Quality(r.StatusCode); q == model.Bad {
			i := d.subbed[k]
			s.refused[i] = reason
			d.log.Warn("opcua server refused a monitored item", "tag", d.points[i].tag.Name, "node", d.points[i].tag.Node, "status", reason)
		}
	}
	s.countWaitingLocked()
	first := s.first
	s.mu.Unlock()

	// A server sends every new item's value at once; waiting for them
	// (briefly) spares the first poll a round of "waiting" samples.
	wait := time.NewTimer(2*time.Duration(d.opts.PublishInterval) + time.Second)
	defer wait.Stop()
	select {
	case <-first:
		return nil
	case <-wait.C:
	case <-ctx.Done():
		return nil
	}
	s.seed(ctx)
	return nil
}

// seed reads, once, the subscribed tags whose first value the server has
// not sent in time. A server owes each new item its value, but some send
// it only with the next change (gopcua's own server when its publishing
// has stalled, which is exactly when a session gets rebuilt), and a tag
// whose value never changes would otherwise stay "waiting" for ever. A
// notification that arrived meanwhile is newer and is kept. A failed read
// only leaves the tags waiting: the session itself is fine.
func (s *session) seed(ctx context.Context) {
	d := s.d
	s.mu.Lock()
	var missing []int
	for _, i := range d.subbed {
		if _, ok := s.values[i]; !ok && s.refused[i] == "" {
			missing = append(missing, i)
		}
	}
	s.mu.Unlock()
	for start := 0; start < len(missing); start += d.opts.MaxNodesPerRead {
		batch := missing[start:min(start+d.opts.MaxNodesPerRead, len(missing))]
		results, err := d.readBatch(ctx, s, batch)
		if err != nil {
			d.log.Warn("opcua subscription sent no first values; reading them failed", "tags", len(batch), "err", err)
			return
		}
		at := time.Now().UTC()
		s.mu.Lock()
		for k, i := range batch {
			if _, ok := s.values[i]; !ok {
				s.values[i] = d.sample(i, results[k], at)
			}
		}
		s.countWaitingLocked()
		s.mu.Unlock()
	}
	d.log.Info("opcua subscription sent no first values in time; read them once", "tags", len(missing))
}

// countWaitingLocked counts the accepted items still without a value and
// closes first when there are none.
func (s *session) countWaitingLocked() {
	s.waiting = 0
	for _, i := range s.d.subbed {
		if _, ok := s.values[i]; !ok && s.refused[i] == "" {
			s.waiting++
		}
	}
	if s.waiting == 0 {
		select {
		case <-s.first:
		default:
			close(s.first)
		}
	}
}

func monitoredItem(p point, handle uint32, interval config.Duration) *ua.MonitoredItemCreateRequest {
	o := p.tag.OPCUA
	sampling, queue := time.Duration(interval), uint32(1)
	var filter *ua.ExtensionObject
	if o != nil {
		sampling, queue = time.Duration(o.SamplingInterval), uint32(max(o.QueueSize, 1))
		switch {
		case o.DeadbandAbsolute > 0:
			filter = ua.NewExtensionObject(&ua.DataChangeFilter{Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: uint32(ua.DeadbandTypeAbsolute), DeadbandValue: o.DeadbandAbsolute})
		case o.DeadbandPercent > 0:
			filter = ua.NewExtensionObject(&ua.DataChangeFilter{Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: uint32(ua.DeadbandTypePercent), DeadbandValue: o.DeadbandPercent})
		}
	}
	return &ua.MonitoredItemCreateRequest{
		ItemToMonitor:  &ua.ReadValueID{NodeID: p.node, AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}},
		MonitoringMode: ua.MonitoringModeReporting,
		RequestedParameters: &ua.MonitoringParameters{
			ClientHandle:     handle,
			SamplingInterval: float64(sampling) / float64(time.Millisecond),
			QueueSize:        queue,
			DiscardOldest:    true,
			Filter:           filter,
		},
	}
}

// drain keeps the latest value of every monitored item until ctx is done.
// An error from the publish loop or a status change of the subscription
// marks the session broken; the next poll replaces it.
func (s *session) drain(ctx context.Context, notes <-chan *opcua.PublishNotificationData) {
	defer close(s.drained)
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-notes:
			if n == nil {
				continue
			}
			s.note(n)
		}
	}
}

func (s *session) note(n *opcua.PublishNotificationData) {
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.Error != nil {
		if s.broken == nil {
			s.broken = fmt.Errorf("subscription: %w", n.Error)
		}
		return
	}
	switch v := n.Value.(type) {
	case *ua.DataChangeNotification:
		for _, item := range v.MonitoredItems {
			if item.ClientHandle == s.d.heartbeatHandle() {
				s.heartbeat.beats++
				s.heartbeat.last = time.Now()
				continue
			}
			i := int(item.ClientHandle)
			if i < 0 || i >= len(s.d.points) || item.Value == nil {
				continue
			}
			s.values[i] = s.d.sample(i, item.Value, now)
			s.d.notified.Add(1)
		}
		if s.waiting > 0 {
			s.countWaitingLocked()
		}
	case *ua.StatusChangeNotification:
		if s.broken == nil {
			s.broken = fmt.Errorf("subscription status changed: %w", v.Status)
		}
	}
}

// latest fills the subscribed tags' samples with the latest values.
func (s *session) latest(idx []int, out []model.Sample) error {
	if len(idx) == 0 {
		return nil
	}
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	for _, i := range idx {
		switch smp, ok := s.values[i]; {
		case s.refused[i] != "":
			out[i] = model.Sample{Tag: s.d.points[i].tag.Name, Device: s.d.dev.Name, Quality: model.Bad, Reason: s.refused[i], Time: now}
		case ok:
			out[i] = smp
		default:
			out[i] = model.Sample{Tag: s.d.points[i].tag.Name, Device: s.d.dev.Name, Quality: model.Bad, Reason: ReasonSubscriptionPending, Time: now}
		}
	}
	return nil
}

// health says why the session can no longer be used, or nil.
func (s *session) health() error {
	if st := s.client.State(); st != opcua.Connected {
		return fmt.Errorf("connection %s", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	return s.heartbeat.silence(time.Now(), s.d.heartbeatTimeout())
}

// heartbeat follows the monitored server clock of a subscription.
type heartbeat struct {
	accepted bool      // the server accepted the item
	created  time.Time // when the items were created
	beats    int       // values received
	last     time.Time // when the last one came
}

// silence says why the subscription must be taken for dead, or nil.
// Once the clock has beaten twice, a pause longer than timeout means the
// publish loop stopped. A clock the server accepted but never reported,
// not even its first value, means the same: the subscription delivers
// nothing, and the tags would keep whatever a first read gave them. A
// server that reports its clock once and never again (or refuses to
// monitor it) never arms the check: it cannot tell silence from calm.
func (h heartbeat) silence(now time.Time, timeout time.Duration) error {
	switch {
	case h.beats >= 2:
		if quiet := now.Sub(h.last); quiet > timeout {
			return fmt.Errorf("subscription silent for %s: no heartbeat (server clock i=2258) although the session answers", quiet.Round(time.Millisecond))
		}
	case h.beats == 0 && h.accepted && !h.created.IsZero():
		if quiet := now.Sub(h.created); quiet > timeout {
			return fmt.Errorf("subscription silent for %s since it was created: not even the first value of the server clock (i=2258) although the session answers", quiet.Round(time.Millisecond))
		}
	}
	return nil
}

// heartbeatHandle is the client handle of the heartbeat item: one past
// the last tag's index (tags' handles are their indexes). A small number:
// node-opcua answers handle 0xFFFFFFFF as 0, which is a tag's.
func (d *Driver) heartbeatHandle() uint32 { return uint32(len(d.points)) }

// heartbeatItem monitors the server's clock (Server_ServerStatus_CurrentTime),
// which changes at every sample: it makes the subscription report at every
// publishing interval, so the driver can tell a live subscription from one
// whose publish loop stopped without an error. gopcua's client pauses its
// publish loop on several errors without telling the subscription, and the
// tags would then keep their last values, looking good, for ever.
func heartbeatItem(handle uint32, publish config.Duration) *ua.MonitoredItemCreateRequest {
	return &ua.MonitoredItemCreateRequest{
		ItemToMonitor:  &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime), AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}},
		MonitoringMode: ua.MonitoringModeReporting,
		RequestedParameters: &ua.MonitoringParameters{
			ClientHandle:     handle,
			SamplingInterval: float64(time.Duration(publish)) / float64(time.Millisecond),
			QueueSize:        1,
			DiscardOldest:    true,
		},
	}
}

// heartbeatTimeout is how long the heartbeat may be silent: several
// publishing intervals, and never less than 10 s so that a loaded gateway
// does not rebuild sessions for nothing.
func (d *Driver) heartbeatTimeout() time.Duration {
	return max(10*time.Second, 5*time.Duration(d.opts.PublishInterval))
}

// alive reads the server's state: the cheapest request that proves the
// session, for devices whose tags are all subscribed.
func (s *session) alive(ctx context.Context) error {
	res, err := s.client.Read(ctx, &ua.ReadRequest{
		NodesToRead:        []*ua.ReadValueID{{NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_State), AttributeID: ua.AttributeIDValue}},
		TimestampsToReturn: ua.TimestampsToReturnNeither,
	})
	if err != nil {
		return fmt.Errorf("read server state: %w", err)
	}
	if sr := res.ResponseHeader.ServiceResult; sr != ua.StatusOK {
		return fmt.Errorf("read server state: %w", sr)
	}
	return nil
}

// close ends the session (the server deletes its subscriptions with it)
// and stops the notification goroutine.
func (s *session) close() {
	closeClient(s.client)
	if s.stopDrain != nil {
		s.stopDrain()
		<-s.drained
	}
}

func closeClient(c *opcua.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.Close(ctx)
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
