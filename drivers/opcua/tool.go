package opcua

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Client is a session for commissioning tools (`hazgate opcua browse`,
// `read`), opened with the same steps and security checks as the driver.
type Client struct {
	s *session
}

// Dial opens a session with the server at endpoint. o is the device's
// opcua block (zero value: security None, anonymous).
func Dial(ctx context.Context, endpoint string, o config.OPCUA, log *slog.Logger) (*Client, error) {
	d, err := New(config.Device{Name: "hazgate-opcua", Address: endpoint, OPCUA: &o, Interval: config.Duration(time.Second)}, log)
	if err != nil {
		return nil, err
	}
	s, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	return &Client{s: s}, nil
}

// Close ends the session.
func (c *Client) Close() { c.s.close() }

// Endpoint is one of a server's endpoints as GetEndpoints describes it.
type Endpoint struct {
	URL                string
	Policy, Mode       string
	UserTokens         []string // Anonymous, UserName, Certificate, IssuedToken
	Certificate        []byte   // DER; empty for security None on some servers
	CertificateThumb   string
	CertificateSubject string
}

// Endpoints asks the server at url which endpoints it offers, without a
// session: what an integrator needs to choose the policy and to check the
// server's certificate before trusting it.
func Endpoints(ctx context.Context, url string) ([]Endpoint, error) {
	eps, err := opcua.GetEndpoints(ctx, url, opcua.DialTimeout(connectTimeout/2))
	if err != nil {
		return nil, fmt.Errorf("get endpoints of %s: %w", url, err)
	}
	out := make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		e := Endpoint{
			URL:         ep.EndpointURL,
			Policy:      strings.TrimPrefix(ep.SecurityPolicyURI, ua.SecurityPolicyURIPrefix),
			Mode:        strings.TrimPrefix(ep.SecurityMode.String(), "MessageSecurityMode"),
			Certificate: ep.ServerCertificate,
		}
		for _, t := range ep.UserIdentityTokens {
			e.UserTokens = append(e.UserTokens, strings.TrimPrefix(t.TokenType.String(), "UserTokenType"))
		}
		if len(ep.ServerCertificate) > 0 {
			e.CertificateThumb = Thumbprint(ep.ServerCertificate)
			if c, err := parseCert(ep.ServerCertificate); err == nil {
				e.CertificateSubject = c.Subject.String()
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Ref is one node found by Browse.
type Ref struct {
	Node       string // node id, ns=2;s=...
	BrowseName string
	Class      string // Object, Variable, Method, ...
	DataType   string // for variables: Double, Boolean, ...
	Value      string // for variables: the current value, or its bad status
	Writable   bool   // for variables: the access level allows writing
}

// Browse lists the nodes below node (hierarchical references, forward), with
// the data type, current value and access of every variable among them,
// read in one request.
func (c *Client) Browse(ctx context.Context, node string) ([]Ref, error) {
	nid, err := parseNode(node)
	if err != nil {
		return nil, err
	}
	refs, err := c.s.client.Node(nid).References(ctx, id.HierarchicalReferences, ua.BrowseDirectionForward, ua.NodeClassAll, true)
	if err != nil {
		return nil, fmt.Errorf("browse %s: %w", node, err)
	}
	out := make([]Ref, len(refs))
	var read []*ua.ReadValueID
	var vars []int
	for i, r := range refs {
		out[i] = Ref{Node: r.NodeID.NodeID.String(), Class: strings.TrimPrefix(r.NodeClass.String(), "NodeClass")}
		if r.BrowseName != nil {
			out[i].BrowseName = r.BrowseName.Name
		}
		if r.NodeClass == ua.NodeClassVariable {
			vars = append(vars, i)
			for _, a := range []ua.AttributeID{ua.AttributeIDValue, ua.AttributeIDDataType, ua.AttributeIDAccessLevel} {
				read = append(read, &ua.ReadValueID{NodeID: r.NodeID.NodeID, AttributeID: a})
			}
		}
	}
	if len(read) == 0 {
		return out, nil
	}
	res, err := c.s.client.Read(ctx, &ua.ReadRequest{NodesToRead: read, TimestampsToReturn: ua.TimestampsToReturnNeither})
	if err != nil {
		return nil, fmt.Errorf("read the variables below %s: %w", node, err)
	}
	if len(res.Results) != len(read) {
		return nil, fmt.Errorf("read the variables below %s: %d results for %d", node, len(res.Results), len(read))
	}
	for k, i := range vars {
		val, typ, acc := res.Results[3*k], res.Results[3*k+1], res.Results[3*k+2]
		out[i].Value = showValue(val)
		if typ.Status == ua.StatusOK && typ.Value != nil {
			switch t := typ.Value.Value().(type) {
			case *ua.NodeID:
				out[i].DataType = typeName(t)
			case *ua.ExpandedNodeID: // gopcua's own server answers with these
				out[i].DataType = typeName(t.NodeID)
			}
		}
		if acc.Status == ua.StatusOK && acc.Value != nil {
			if a, ok := acc.Value.Value().(uint8); ok {
				out[i].Writable = a&uint8(ua.AccessLevelTypeCurrentWrite) != 0
			}
		}
	}
	return out, nil
}

// Reading is one node's value as Read returns it.
type Reading struct {
	Node    string
	Value   string
	Status  string // Good, or the status name
	Source  time.Time
	Quality string
}

// Read reads the nodes' values in one request.
func (c *Client) Read(ctx context.Context, nodes []string) ([]Reading, error) {
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnSource}
	for _, n := range nodes {
		nid, err := parseNode(n)
		if err != nil {
			return nil, err
		}
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDValue})
	}
	res, err := c.s.client.Read(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(res.Results) != len(nodes) {
		return nil, fmt.Errorf("read: %d results for %d nodes", len(res.Results), len(nodes))
	}
	out := make([]Reading, len(nodes))
	for i, dv := range res.Results {
		q, reason := Quality(dv.Status)
		out[i] = Reading{Node: nodes[i], Value: showValue(dv), Source: dv.SourceTimestamp, Quality: q.String(), Status: "Good"}
		if reason != "" {
			out[i].Status = reason
		}
		if q == model.Bad {
			out[i].Value = "-"
		}
	}
	return out, nil
}

func parseNode(s string) (*ua.NodeID, error) {
	id, err := config.ParseNodeID(s)
	if err != nil {
		return nil, err
	}
	return uaNodeID(id), nil
}

func showValue(dv *ua.DataValue) string {
	if dv == nil {
		return ""
	}
	if q, reason := Quality(dv.Status); q == model.Bad {
		return "(" + reason + ")"
	}
	if dv.Value == nil {
		return "(empty)"
	}
	v := fmt.Sprint(dv.Value.Value())
	if len(v) > 60 {
		v = v[:57] + "..."
	}
	return v
}

func typeName(t *ua.NodeID) string {
	if t.Namespace() == 0 && t.Type() != ua.NodeIDTypeString {
		if n := id.Name(t.IntID()); n != "" {
			return n
		}
	}
	return t.String()
}
