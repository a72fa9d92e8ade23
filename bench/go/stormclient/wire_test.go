package main

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// joined is the parts as one slice.
func joined(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// node is the whole encoded Node (the storm sends head and tail apart, never joined).
func node(id, cluster string, tail []byte) []byte {
	return append(nodeHead(id, cluster), tail...)
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAnEnvoyNodeDecodesWithItsExtensionsAndVersion(t *testing.T) {
	var n core.Node
	if err := proto.Unmarshal(node("storm-1", "storm", envoyNodeTail(516)), &n); err != nil {
		t.Fatal(err)
	}
	v := n.GetUserAgentBuildVersion().GetVersion()
	if n.GetId() != "storm-1" || n.GetUserAgentName() != "envoy" || v.GetMajorNumber() != 1 || v.GetMinorNumber() != 40 || len(n.GetExtensions()) != 516 {
		t.Fatalf("node decoded as id %q agent %q version %v, %d extensions", n.GetId(), n.GetUserAgentName(), v, len(n.GetExtensions()))
	}
	if size := proto.Size(&n); size < 59_000 || size > 63_000 {
		t.Fatalf("node of %d bytes, want about Envoy 1.40's 61,084", size)
	}
}

func TestRequestsDecodeAsEnvoysWould(t *testing.T) {
	r := request{node: nodeHead("storm-7", "storm"), nodeTail: envoyNodeTail(3), typeURL: endpointType, version: "v1", nonce: "3", names: encodeNames([]string{"a", "b"})}
	var sotw discovery.DiscoveryRequest
	if err := proto.Unmarshal(joined(r.sotw()), &sotw); err != nil {
		t.Fatal(err)
	}
	if sotw.GetNode().GetId() != "storm-7" || len(sotw.GetNode().GetExtensions()) != 3 || sotw.GetTypeUrl() != endpointType || sotw.GetVersionInfo() != "v1" || sotw.GetResponseNonce() != "3" || len(sotw.GetResourceNames()) != 2 {
		t.Fatalf("sotw request decoded as %v", &sotw)
	}
	var delta discovery.DeltaDiscoveryRequest
	if err := proto.Unmarshal(joined(r.delta()), &delta); err != nil {
		t.Fatal(err)
	}
	if delta.GetNode().GetCluster() != "storm" || len(delta.GetNode().GetExtensions()) != 3 || delta.GetResponseNonce() != "3" || len(delta.GetResourceNamesSubscribe()) != 2 {
		t.Fatalf("delta request decoded as %v", &delta)
	}
}

func TestResponsesYieldTypeNonceAndNames(t *testing.T) {
	cds := &discovery.DiscoveryResponse{VersionInfo: "v9", TypeUrl: clusterType, Nonce: "1",
		Resources: []*anypb.Any{anyOf(t, &cluster.Cluster{Name: "c1"}), anyOf(t, &cluster.Cluster{Name: "c2"})}}
	b, _ := proto.Marshal(cds)
	got, err := parseResponse(b, false)
	if err != nil || got.version != "v9" || got.nonce != "1" || got.typeURL != clusterType || len(got.names) != 2 || got.names[1] != "c2" {
		t.Fatalf("sotw: %+v %v", got, err)
	}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: "c1", Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Zone: "z"}}}}
	eds := &discovery.DeltaDiscoveryResponse{TypeUrl: endpointType, Nonce: "2",
		Resources: []*discovery.Resource{{Name: "c1", Version: "x", Resource: anyOf(t, cla)}}}
	b, _ = proto.Marshal(eds)
	got, err = parseResponse(b, true)
	if err != nil || got.nonce != "2" || len(got.names) != 1 || got.names[0] != "c1" {
		t.Fatalf("delta: %+v %v", got, err)
	}
}
