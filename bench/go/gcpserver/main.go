// gcpserver serves, through go-control-plane, the CDS and EDS resources fulcrum served (read
// from a dump the load client wrote), so both servers are compared on identical content. One
// HTTP trigger changes one endpoint weight through go-control-plane's own cache API:
//
//	POST /weight?cluster=svc-0007&address=10.0.7.4&port=8080&weight=5
//
// -cache snapshot: one SnapshotCache entry for the whole fleet (every node hashes to one key);
// a change sets a new snapshot whose EDS version moves (CDS keeps its version).
// -cache linear: LinearCaches per type behind a MuxCache; a change updates one resource.
//
// On start it prints one JSON line {"xds":port,"http":port} on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"fulcrum.local/bench-go/internal/dump"
)

// fleetHash puts every node under one key: one snapshot serves the whole fleet.
type fleetHash struct{}

func (fleetHash) ID(*corev3.Node) string { return "fleet" }

func main() {
	kind := flag.String("cache", "linear", "snapshot | linear")
	resources := flag.String("resources", "", "dump of fulcrum's CDS and EDS responses (from loadclient -dump)")
	xdsPort := flag.Int("xds-port", 0, "xDS port (0: any free port)")
	httpPort := flag.Int("http-port", 0, "trigger port (0: any free port)")
	flag.Parse()
	clusters, clas, err := load(*resources)
	if err != nil {
		log.Fatalf("gcpserver: %v", err)
	}
	st, err := newState(*kind, clusters, clas)
	if err != nil {
		log.Fatalf("gcpserver: %v", err)
	}
	xdsLis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *xdsPort))
	if err != nil {
		log.Fatalf("gcpserver: xds listen: %v", err)
	}
	httpLis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *httpPort))
	if err != nil {
		log.Fatalf("gcpserver: http listen: %v", err)
	}
	gs := grpc.NewServer(grpc.MaxConcurrentStreams(1_000_000))
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, server.NewServer(context.Background(), st.cache, nil))
	go func() { log.Fatal(gs.Serve(xdsLis)) }()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /weight", st.handleWeight)
	ready, _ := json.Marshal(map[string]int{"xds": port(xdsLis), "http": port(httpLis), "pid": os.Getpid()})
	fmt.Println(string(ready))
	log.Fatal(http.Serve(httpLis, mux))
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// load reads the clusters and assignments out of the dumped responses, in the order sent.
func load(path string) ([]types.Resource, []*endpoint.ClusterLoadAssignment, error) {
	messages, err := dump.Read(path)
	if err != nil {
		return nil, nil, err
	}
	var clusters []types.Resource
	var clas []*endpoint.ClusterLoadAssignment
	for _, m := range messages {
		var res discovery.DiscoveryResponse
		if err := proto.Unmarshal(m, &res); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, a := range res.GetResources() {
			switch a.GetTypeUrl() {
			case resource.ClusterType:
				c := &cluster.Cluster{}
				if err := a.UnmarshalTo(c); err != nil {
					return nil, nil, err
				}
				clusters = append(clusters, c)
			case resource.EndpointType:
				c := &endpoint.ClusterLoadAssignment{}
				if err := a.UnmarshalTo(c); err != nil {
					return nil, nil, err
				}
				clas = append(clas, c)
			}
		}
	}
	if len(clusters) == 0 || len(clas) == 0 {
		return nil, nil, fmt.Errorf("%s: %d clusters and %d assignments; need both", path, len(clusters), len(clas))
	}
	return clusters, clas, nil
}

type state struct {
	mu       sync.Mutex
	kind     string
	cache    cache.Cache
	snapshot cache.SnapshotCache
	eds      *cache.LinearCache
	clusters []types.Resource
	clas     []*endpoint.ClusterLoadAssignment
	version  int
}

func newState(kind string, clusters []types.Resource, clas []*endpoint.ClusterLoadAssignment) (*state, error) {
	st := &state{kind: kind, clusters: clusters, clas: clas}
	switch kind {
	case "snapshot":
		st.snapshot = cache.NewSnapshotCache(true, fleetHash{}, nil)
		st.cache = st.snapshot
		return st, st.setSnapshot()
	case "linear":
		cds := cache.NewLinearCache(resource.ClusterType, cache.WithInitialResources(byName(clusters)))
		st.eds = cache.NewLinearCache(resource.EndpointType, cache.WithInitialResources(byName(asResources(clas))))
		st.cache = &cache.MuxCache{
			Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
			ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
			Caches:        map[string]cache.Cache{resource.ClusterType: cds, resource.EndpointType: st.eds},
		}
		return st, nil
	}
	return nil, fmt.Errorf("-cache must be snapshot or linear, got %q", kind)
}

// setSnapshot publishes the current assignments; CDS keeps version "1" so only EDS is resent.
func (st *state) setSnapshot() error {
	snap := &cache.Snapshot{}
	snap.Resources[types.Cluster] = cache.NewResources("1", st.clusters)
	snap.Resources[types.Endpoint] = cache.NewResources(strconv.Itoa(st.version), asResources(st.clas))
	return st.snapshot.SetSnapshot(context.Background(), "fleet", snap)
}

func (st *state) handleWeight(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	weight, err := strconv.ParseUint(q.Get("weight"), 10, 32)
	port, perr := strconv.ParseUint(q.Get("port"), 10, 32)
	if err != nil || perr != nil || weight == 0 {
		http.Error(w, "weight and port must be positive integers", http.StatusBadRequest)
		return
	}
	if err := st.setWeight(q.Get("cluster"), q.Get("address"), uint32(port), uint32(weight)); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (st *state) setWeight(name, address string, port, weight uint32) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, cla := range st.clas {
		if cla.GetClusterName() != name {
			continue
		}
		next := proto.Clone(cla).(*endpoint.ClusterLoadAssignment)
		if !setEndpointWeight(next, address, port, weight) {
			return fmt.Errorf("no endpoint %s:%d in %s", address, port, name)
		}
		st.clas[i] = next
		st.version++
		if st.kind == "snapshot" {
			return st.setSnapshot()
		}
		return st.eds.UpdateResource(name, next)
	}
	return fmt.Errorf("no cluster %s", name)
}

func setEndpointWeight(cla *endpoint.ClusterLoadAssignment, address string, port, weight uint32) bool {
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() == address && sa.GetPortValue() == port {
				lb.LoadBalancingWeight = wrapperspb.UInt32(weight)
				return true
			}
		}
	}
	return false
}

func byName(rs []types.Resource) map[string]types.Resource {
	out := make(map[string]types.Resource, len(rs))
	for _, r := range rs {
		out[cache.GetResourceName(r)] = r
	}
	return out
}

func asResources(clas []*endpoint.ClusterLoadAssignment) []types.Resource {
	out := make([]types.Resource, len(clas))
	for i, c := range clas {
		out[i] = c
	}
	return out
}
