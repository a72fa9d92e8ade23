package main

import (
	"fmt"
	"slices"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func assignment(name string, weight uint32) *endpoint.ClusterLoadAssignment {
	lb := func(addr string, w uint32) *endpoint.LbEndpoint {
		return &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: &core.Address{
				Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080},
				}},
			}}},
			LoadBalancingWeight: wrapperspb.UInt32(w),
		}
	}
	return &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
		LbEndpoints: []*endpoint.LbEndpoint{lb("10.0.0.1", 1), lb("10.0.0.4", weight)},
	}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func decode(t *testing.T, m proto.Message, s *summary) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := (codec{}).Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
}

func TestSotwResponses(t *testing.T) {
	watch := &watchTarget{cluster: "svc-b", address: "10.0.0.4", port: 8080}
	cds := &discovery.DiscoveryResponse{VersionInfo: "v1", Nonce: "n1", TypeUrl: resource.ClusterType, Resources: []*anypb.Any{
		mustAny(t, &cluster.Cluster{Name: "svc-a"}), mustAny(t, &cluster.Cluster{Name: "svc-b"}),
	}}
	var s summary
	decode(t, cds, &s)
	if s.version != "v1" || s.nonce != "n1" || s.typeURL != resource.ClusterType || len(s.names) != 2 || s.names[1] != "svc-b" {
		t.Fatalf("CDS summary: %+v", s)
	}
	eds := &discovery.DiscoveryResponse{TypeUrl: resource.EndpointType, Resources: []*anypb.Any{
		mustAny(t, assignment("svc-a", 9)), mustAny(t, assignment("svc-b", 7)),
	}}
	for range 2 { // the second decode is served from the memo
		s = summary{watch: watch}
		decode(t, eds, &s)
		if s.weight != 7 {
			t.Fatalf("weight of the watched endpoint: got %d, want 7", s.weight)
		}
	}
}

func TestDeltaResponseWithoutTheWatchedCluster(t *testing.T) {
	watch := &watchTarget{cluster: "svc-b", address: "10.0.0.4", port: 8080}
	res := &discovery.DeltaDiscoveryResponse{Nonce: "d1", TypeUrl: resource.EndpointType, Resources: []*discovery.Resource{
		{Name: "svc-a", Version: "1", Resource: mustAny(t, assignment("svc-a", 5))},
	}}
	s := summary{watch: watch, delta: true}
	decode(t, res, &s)
	if s.nonce != "d1" || s.weight != 0 {
		t.Fatalf("delta summary: nonce %q weight %d, want d1 and 0", s.nonce, s.weight)
	}
	res.Resources = append(res.Resources, &discovery.Resource{Name: "svc-b", Resource: mustAny(t, assignment("svc-b", 11))})
	s = summary{watch: watch, delta: true}
	decode(t, res, &s)
	if s.weight != 11 {
		t.Fatalf("delta weight: got %d, want 11", s.weight)
	}
}

func TestFollowKeepsEDSInStepWithCDS(t *testing.T) {
	sotw := &stream{}
	next, added := sotw.follow(nil, []string{"a", "b"})
	if len(next) != 2 || len(added) != 2 {
		t.Fatalf("first SotW CDS: next %v added %v", next, added)
	}
	next, added = sotw.follow([]string{"a", "b"}, []string{"a", "b"})
	if len(next) != 2 || added != nil {
		t.Fatalf("unchanged SotW CDS must not resubscribe: next %v added %v", next, added)
	}
	next, added = sotw.follow([]string{"a", "b"}, []string{"a", "b", "c"})
	if len(next) != 3 || len(added) != 1 || added[0] != "c" {
		t.Fatalf("SotW CDS adding c: next %v added %v", next, added)
	}
	next, _ = sotw.follow([]string{"a", "b", "c"}, []string{"a"})
	if len(next) != 1 {
		t.Fatalf("SotW CDS removing b, c: next %v", next)
	}
	delta := &stream{delta: true}
	next, added = delta.follow([]string{"a", "b"}, []string{"c", "a"})
	if len(next) != 3 || len(added) != 1 || added[0] != "c" {
		t.Fatalf("Delta CDS adding c (a changed): next %v added %v", next, added)
	}
}

func TestSubsetSubscriptions(t *testing.T) {
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%04d", i)
	}
	a, b := &stream{id: 1, fraction: 0.05}, &stream{id: 2, fraction: 0.05}
	na, _ := a.follow(nil, names)
	nb, _ := b.follow(nil, names)
	// About 5 % each (binomial: 50 ± 7), each stream its own, and the same on every call.
	if len(na) < 25 || len(na) > 80 || len(nb) < 25 || len(nb) > 80 {
		t.Fatalf("subset sizes %d and %d, want about 50", len(na), len(nb))
	}
	if slices.Equal(na, nb) {
		t.Fatalf("two streams got the same subset %v", na)
	}
	again, _ := (&stream{id: 1, fraction: 0.05}).follow(nil, names)
	if !slices.Equal(na, again) {
		t.Fatalf("stream 1's subset changed between runs")
	}
	// A later CDS response keeps the subset: nothing added, nothing dropped.
	if next, added := a.follow(na, names); !slices.Equal(next, na) || added != nil {
		t.Fatalf("unchanged CDS moved the subset: next %d names, added %v", len(next), added)
	}
}
