package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

const (
	sotwMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	// Envoy's default HTTP/2 windows are 256 MiB; 16 MiB is far above one response here.
	window = 16 << 20
)

// stream is one simulated Envoy: its own HTTP/2 connection and one ADS stream on it.
type stream struct {
	id     int
	delta  bool
	watch  *watchTarget
	run    *round
	bytes  atomic.Int64
	pushes atomic.Int64 // EDS responses received (each is one push to this Envoy)
	synced chan struct{}
	dumped [][]byte // first CDS and EDS responses, when dumping
	dump   bool
	// fraction of the clusters CDS names whose assignments this stream asks for (0 or 1: all, as
	// an Envoy does; between: its own subset, as proxyless gRPC clients naming their services do).
	fraction float64
	watching atomic.Bool // whether the subscription holds the watched cluster
}

func dial(target string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(window),
		grpc.WithInitialConnWindowSize(window),
		grpc.WithReadBufferSize(16<<10),
		grpc.WithWriteBufferSize(16<<10),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{}), grpc.MaxCallRecvMsgSize(64<<20)),
	)
}

// serve opens the stream and answers the server as Envoy would until ctx ends.
func (s *stream) serve(ctx context.Context, target string) error {
	conn, err := dial(target)
	if err != nil {
		return err
	}
	defer conn.Close()
	method := sotwMethod
	if s.delta {
		method = deltaMethod
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	node := &core.Node{Id: fmt.Sprintf("bench-%d", s.id), Cluster: "bench"}
	if err := cs.SendMsg(s.first(node)); err != nil {
		return err
	}
	var names []string
	var edsVersion, edsNonce string
	for {
		m := summary{watch: s.watch, delta: s.delta, keepRaw: s.dump}
		if err := cs.RecvMsg(&m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stream %d: %w", s.id, err)
		}
		s.bytes.Add(int64(m.size))
		if m.typeURL == resource.EndpointType {
			s.pushes.Add(1)
		}
		if m.weight != 0 {
			s.run.saw(s.id, m.weight)
		}
		if m.typeURL == resource.ClusterType {
			next, added := s.follow(names, m.names)
			if len(added) > 0 || len(next) != len(names) {
				names = next
				if err := cs.SendMsg(s.subscribe(names, added, edsVersion, edsNonce)); err != nil {
					return err
				}
			}
			s.watching.Store(slices.Contains(names, s.watch.cluster))
			// A stream that wants none of the clusters is never sent an assignment: in sync now.
			if len(names) == 0 {
				s.markSynced()
			}
		}
		if err := cs.SendMsg(s.ack(&m, names)); err != nil {
			return err
		}
		if m.typeURL == resource.EndpointType {
			edsVersion, edsNonce = m.version, m.nonce
		}
		s.record(&m)
	}
}

// follow keeps the EDS subscription in step with CDS, as Envoy does for every cluster it learns of
// later, not only the first response's: a SotW CDS response is the whole set (subscribe to exactly
// it); a Delta one carries only what changed (subscribe to the names not yet subscribed).
func (s *stream) follow(subscribed, all []string) (next, added []string) {
	known := make(map[string]bool, len(subscribed))
	for _, n := range subscribed {
		known[n] = true
	}
	var cds []string
	for _, n := range all {
		if s.wants(n) {
			cds = append(cds, n)
		}
	}
	for _, n := range cds {
		if !known[n] {
			added = append(added, n)
		}
	}
	if s.delta {
		return append(subscribed, added...), added
	}
	if len(added) == 0 && len(cds) == len(subscribed) {
		return subscribed, nil
	}
	return cds, added
}

// wants tells whether this stream asks for a cluster's assignment: a hash of the stream and the
// name, so each stream has its own subset, the same on every run and for every server.
func (s *stream) wants(name string) bool {
	if s.fraction <= 0 || s.fraction >= 1 {
		return true
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s", s.id, name)
	return float64(h.Sum32()) < s.fraction*(1<<32)
}

func (s *stream) markSynced() {
	select {
	case <-s.synced:
	default:
		close(s.synced)
	}
}

// record notes the initial sync (the first EDS response) and keeps it when dumping.
func (s *stream) record(m *summary) {
	if s.dump && len(s.dumped) < 2 {
		s.dumped = append(s.dumped, m.raw)
	}
	if m.typeURL == resource.EndpointType {
		s.markSynced()
	}
}

// first is the initial request: CDS wildcard, with the node.
func (s *stream) first(node *core.Node) proto.Message {
	if s.delta {
		return &discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}
	}
	return &discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}
}

// subscribe asks for the assignments of the clusters CDS named, as Envoy does once it has them:
// SotW repeats the whole list with the last accepted EDS version and nonce, Delta names the additions.
func (s *stream) subscribe(names, added []string, version, nonce string) proto.Message {
	if s.delta {
		return &discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: added}
	}
	return &discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
}

// ack acknowledges a response; a SotW EDS ACK repeats the full subscription.
func (s *stream) ack(m *summary, names []string) proto.Message {
	if s.delta {
		return &discovery.DeltaDiscoveryRequest{TypeUrl: m.typeURL, ResponseNonce: m.nonce}
	}
	req := &discovery.DiscoveryRequest{TypeUrl: m.typeURL, VersionInfo: m.version, ResponseNonce: m.nonce}
	if m.typeURL == resource.EndpointType {
		req.ResourceNames = names
	}
	return req
}

// round is one weight change: when each stream first saw the new weight.
type round struct {
	expected atomic.Uint32
	start    atomic.Int64 // unix nanoseconds at the trigger
	seen     []atomic.Int64
	count    atomic.Int64
}

func newRound(streams int) *round { return &round{seen: make([]atomic.Int64, streams)} }

func (r *round) saw(id int, weight uint32) {
	if weight != r.expected.Load() {
		return
	}
	if r.seen[id].CompareAndSwap(0, time.Now().UnixNano()) {
		r.count.Add(1)
	}
}

// begin resets the round for a new weight; streams record from now on.
func (r *round) begin(weight uint32) {
	for i := range r.seen {
		r.seen[i].Store(0)
	}
	r.count.Store(0)
	r.start.Store(time.Now().UnixNano())
	r.expected.Store(weight)
}
