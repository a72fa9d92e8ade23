package main

import (
	"fmt"
	"sync"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// summary is what a stream needs from one (Delta)DiscoveryResponse. The codec fills it straight
// from the wire: the client skims every response and decodes only the watched assignment, so
// its CPU stays far below the server's even when a server resends all 100 assignments.
type summary struct {
	watch   *watchTarget
	keepRaw bool
	delta   bool

	raw     []byte
	size    int
	version string
	typeURL string
	nonce   string
	names   []string // cluster names, from a CDS response only
	weight  uint32   // the watched endpoint's weight, 0 when the assignment is not in the response
}

// watchTarget names the endpoint whose weight the benchmark changes.
type watchTarget struct {
	cluster string
	address string
	port    uint32

	mu   sync.Mutex
	memo map[string]uint32 // encoded assignment -> the watched endpoint's weight
}

// codec marshals requests with protobuf and parses responses into a summary.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (codec) Unmarshal(data []byte, v any) error {
	s, ok := v.(*summary)
	if !ok {
		return fmt.Errorf("codec: cannot unmarshal into %T", v)
	}
	s.size = len(data)
	if s.keepRaw {
		s.raw = append([]byte(nil), data...)
	}
	return s.parse(data)
}

// parse walks DiscoveryResponse (1 version_info, 2 resources: Any, 4 type_url, 5 nonce) or
// DeltaDiscoveryResponse (1 system_version_info, 2 resources: Resource{2 Any, 3 name}, 4, 5).
func (s *summary) parse(b []byte) error {
	var resources [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
		switch num {
		case 1:
			s.version = string(v)
		case 2:
			resources = append(resources, v)
		case 4:
			s.typeURL = string(v)
		case 5:
			s.nonce = string(v)
		}
	}
	for _, r := range resources {
		if s.delta {
			r = field(r, 2)
		}
		if err := s.resource(field(r, 2)); err != nil {
			return err
		}
	}
	return nil
}

// resource looks at one Any's value: a Cluster's name, or the watched assignment's weight.
func (s *summary) resource(value []byte) error {
	name := string(field(value, 1)) // Cluster.name and ClusterLoadAssignment.cluster_name are both field 1
	switch s.typeURL {
	case resource.ClusterType:
		s.names = append(s.names, name)
	case resource.EndpointType:
		if s.watch == nil || name != s.watch.cluster {
			return nil
		}
		w, err := s.watch.weightOf(value)
		s.weight = w
		return err
	}
	return nil
}

// weightOf decodes the watched assignment (generated types) once per distinct encoding: every
// stream receives the same bytes in a round, so the fleet shares one decode, as Envoys sharing
// nothing would each pay for theirs in their own process.
func (t *watchTarget) weightOf(value []byte) (uint32, error) {
	t.mu.Lock()
	w, ok := t.memo[string(value)]
	t.mu.Unlock()
	if ok {
		return w, nil
	}
	var cla endpoint.ClusterLoadAssignment
	if err := proto.Unmarshal(value, &cla); err != nil {
		return 0, err
	}
	w = t.weightIn(&cla)
	t.mu.Lock()
	if t.memo == nil || len(t.memo) > 64 {
		t.memo = make(map[string]uint32)
	}
	t.memo[string(value)] = w
	t.mu.Unlock()
	return w, nil
}

func (t *watchTarget) weightIn(cla *endpoint.ClusterLoadAssignment) uint32 {
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() == t.address && sa.GetPortValue() == t.port {
				if lb.GetLoadBalancingWeight() == nil {
					return 1
				}
				return lb.GetLoadBalancingWeight().GetValue()
			}
		}
	}
	return 0
}

// field returns the first length-delimited field num of a message (nil when absent).
func field(b []byte, want protowire.Number) []byte {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil
		}
		if num == want && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return v
		}
		b = b[m:]
	}
	return nil
}
