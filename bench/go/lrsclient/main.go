// lrsclient is a fleet of proxies sending load reports: N simulated Envoys, each on its own
// connection with one LRS stream (envoy.service.load_stats.v3), announce themselves as Envoy does
// (node first, send_all_clusters), wait for the server's LoadStatsResponse, then report every
// interval it asked for, their reports spread evenly over the interval as a fleet's are. Every
// report carries the proxy's whole Node, as Envoy's do (-extensions: 516 entries, ~61 KB, as 1.40).
//
// Every report holds every endpoint of -clusters clusters named svc-0000, svc-0001, … with -endpoints
// endpoints each at 10.<c/256>.<c%256>.<e+1>:8080 (per endpoint: requests issued, succeeded, failed,
// in flight, and an ORCA cpu_utilization), as an Envoy with report_endpoint_granularity sends
// when it calls every endpoint. After -warmup it measures the server's CPU time (/proc/PID) for
// -duration and prints one JSON line: reports sent, endpoint entries sent, and the server's CPU
// seconds per second of the window.
//
//	lrsclient -target 127.0.0.1:18000 -proxies 200 -clusters 5 -endpoints 20 -server-pid PID
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrs "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"fulcrum.local/bench-go/internal/proc"
)

type options struct {
	target     string
	proxies    int
	clusters   int
	endpoints  int
	warmup     time.Duration
	duration   time.Duration
	serverPid  int
	extensions int
	nodePrefix string
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.target, "target", "127.0.0.1:18000", "the server's LRS (xDS) port, host:port")
	flag.IntVar(&o.proxies, "proxies", 100, "simulated Envoys (one connection and one LRS stream each)")
	flag.IntVar(&o.clusters, "clusters", 5, "clusters in every report (svc-0000, svc-0001, …)")
	flag.IntVar(&o.endpoints, "endpoints", 20, "endpoints per cluster in every report")
	flag.DurationVar(&o.warmup, "warmup", 6*time.Second, "report this long before measuring")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measure the server's CPU over this long")
	flag.IntVar(&o.serverPid, "server-pid", 0, "server process, for its CPU time (/proc/PID)")
	flag.IntVar(&o.extensions, "extensions", 516, "extensions listed in each proxy's Node, which Envoy sends with every report (1.40: 516, ~61 KB); 0: a bare node")
	flag.StringVar(&o.nodePrefix, "node-prefix", "proxy", "proxy p's node id is PREFIX-p (a soak gives each round's fleet new ids, as replaced pods have)")
	flag.Parse()
	return o
}

type result struct {
	Proxies        int     `json:"proxies"`
	Streams        int64   `json:"streams"`
	Reports        int64   `json:"reports"`
	Entries        int64   `json:"entries"`
	EntriesPerSec  float64 `json:"entriesPerSec"`
	IntervalMs     int64   `json:"intervalMs"`
	ServerCPUPerS  float64 `json:"serverCpuPerSec"`
	WindowSeconds  float64 `json:"windowSeconds"`
	StreamFailures int64   `json:"streamFailures"`
}

// counters are shared by every proxy goroutine.
type counters struct {
	streams, reports, entries, failures atomic.Int64
	intervalMs                          atomic.Int64
}

func main() {
	o := parseFlags()
	if o.proxies < 1 || o.clusters < 1 || o.endpoints < 1 {
		log.Fatal("-proxies, -clusters and -endpoints must be >= 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c counters
	var wg sync.WaitGroup
	start := time.Now()
	for p := range o.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runProxy(ctx, o, p, start, &c); err != nil && ctx.Err() == nil {
				c.failures.Add(1)
				log.Printf("proxy %d: %v", p, err)
			}
		}()
	}
	time.Sleep(o.warmup)
	reports0, entries0 := c.reports.Load(), c.entries.Load()
	cpu0 := serverCPU(o.serverPid)
	t0 := time.Now()
	time.Sleep(o.duration)
	window := time.Since(t0).Seconds()
	cpu := serverCPU(o.serverPid) - cpu0
	r := result{
		Proxies:        o.proxies,
		Streams:        c.streams.Load(),
		Reports:        c.reports.Load() - reports0,
		Entries:        c.entries.Load() - entries0,
		IntervalMs:     c.intervalMs.Load(),
		ServerCPUPerS:  cpu / window,
		WindowSeconds:  window,
		StreamFailures: c.failures.Load(),
	}
	r.EntriesPerSec = float64(r.Entries) / window
	cancel()
	wg.Wait()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.StreamFailures > 0 {
		os.Exit(1)
	}
}

func serverCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	user, system := proc.CPUSplit(pid)
	return user + system
}

// runProxy is one Envoy: connect, announce, wait for the interval, then report at its phase of it.
func runProxy(ctx context.Context, o options, p int, start time.Time, c *counters) error {
	conn, err := grpc.NewClient(o.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := lrs.NewLoadReportingServiceClient(conn).StreamLoadStats(ctx)
	if err != nil {
		return err
	}
	node := envoyNode(fmt.Sprintf("%s-%d", o.nodePrefix, p), o.extensions)
	if err := stream.Send(&lrs.LoadStatsRequest{Node: node}); err != nil {
		return err
	}
	res, err := stream.Recv()
	if err != nil {
		return err
	}
	c.streams.Add(1)
	interval := res.GetLoadReportingInterval().AsDuration()
	if interval <= 0 {
		return fmt.Errorf("no reporting interval in %v", res)
	}
	c.intervalMs.Store(interval.Milliseconds())
	// A later response asks another interval (fulcrum's cadence moved): as Envoy does, the next
	// report comes that long after the answer, and the reports after it at the new interval.
	asked := make(chan time.Duration, 1)
	go func() {
		for {
			res, err := stream.Recv()
			if err != nil {
				return
			}
			if d := res.GetLoadReportingInterval().AsDuration(); d > 0 {
				c.intervalMs.Store(d.Milliseconds())
				select {
				case <-asked:
				default:
				}
				asked <- d
			}
		}
	}()
	report := fleetReport(o, p, node, interval)
	entries := int64(o.clusters * o.endpoints)
	// Each proxy's reports fall at its own phase of the interval, as a fleet's do.
	phase := time.Duration(int64(interval) * int64(p) / int64(o.proxies))
	timer := time.NewTimer(time.Until(start.Add(phase)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-asked:
			interval = d
			report = fleetReport(o, p, node, interval)
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(interval)
			continue
		case <-timer.C:
		}
		if err := stream.Send(report); err != nil {
			return err
		}
		c.reports.Add(1)
		c.entries.Add(entries)
		timer.Reset(interval)
	}
}

// envoyNode is the Node an Envoy 1.40 puts in every load report: its id and cluster, the LRS
// client feature, its user agent and build, and one entry per extension compiled in (~118 bytes
// each: 1.40 lists 516).
func envoyNode(id string, extensions int) *core.Node {
	n := &core.Node{
		Id:                   id,
		Cluster:              "bench",
		ClientFeatures:       []string{"envoy.lrs.supports_send_all_clusters"},
		UserAgentName:        "envoy",
		UserAgentVersionType: &core.Node_UserAgentBuildVersion{UserAgentBuildVersion: &core.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 40}}},
	}
	for i := range extensions {
		n.Extensions = append(n.Extensions, &core.Extension{
			Name:     fmt.Sprintf("envoy.filters.http.extension_number_%d", i),
			Category: "envoy.filters.http",
			TypeUrls: []string{fmt.Sprintf("type.googleapis.com/envoy.ext.filters.http.v3.Ext%d", i)},
		})
	}
	return n
}

// clusterName is the name bench/gcp-fanout-servers.ts gives cluster ci in the catalog it serves:
// a report naming clusters the catalog does not have is read and dropped, and costs the
// aggregation nothing.
func clusterName(ci int) string { return fmt.Sprintf("svc-%04d", ci) }

// fleetReport is one proxy's report: every endpoint of every cluster, with traffic and ORCA cpu.
func fleetReport(o options, p int, node *core.Node, interval time.Duration) *lrs.LoadStatsRequest {
	req := &lrs.LoadStatsRequest{Node: node}
	for ci := range o.clusters {
		eps := make([]*endpoint.UpstreamEndpointStats, 0, o.endpoints)
		for e := range o.endpoints {
			issued := uint64(20 + (p+e)%7)
			eps = append(eps, &endpoint.UpstreamEndpointStats{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: fmt.Sprintf("10.%d.%d.%d", ci>>8, ci&255, e+1), PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080},
				}}},
				TotalIssuedRequests:     issued,
				TotalSuccessfulRequests: issued - 1,
				TotalErrorRequests:      1,
				TotalRequestsInProgress: 2,
				LoadMetricStats: []*endpoint.EndpointLoadMetricStats{{
					MetricName: "cpu_utilization", NumRequestsFinishedWithMetric: issued, TotalMetricValue: float64(issued) * (0.3 + 0.05*float64(e%10)),
				}},
			})
		}
		req.ClusterStats = append(req.ClusterStats, &endpoint.ClusterStats{
			ClusterName:           clusterName(ci),
			UpstreamLocalityStats: []*endpoint.UpstreamLocalityStats{{Locality: &core.Locality{Zone: "z"}, UpstreamEndpointStats: eps}},
			LoadReportInterval:    durationpb.New(interval),
		})
	}
	return req
}
