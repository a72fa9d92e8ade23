// stormclient is a reconnect storm: N simulated Envoys connect to an xDS server at an even
// rate over -within, each on its own TCP connection with HTTP/2 in clear and one ADS stream
// (SotW or Delta): CDS wildcard, then EDS for the clusters CDS named, every response ACKed.
// It prints one JSON line: how many synced (CDS and every assignment asked for), were refused
// or reset, the time from each proxy's start to its sync (p50, p99, max), when the last one
// synced (since the storm began), and the CPU seconds the server and this client spent.
//
// A proxy is a few hundred bytes of Go and a hand-rolled HTTP/2 client (golang.org/x/net's
// framer), so the client's CPU stays small next to the server's on a shared machine.
//
//	stormclient -target 127.0.0.1:18000 -connections 10000 -within 2s [-delta] [-server-pid PID]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"regexp"
	"slices"
	"time"

	"fulcrum.local/bench-go/internal/proc"
)

type options struct {
	target      string
	connections int
	sources     int
	within      time.Duration
	timeout     time.Duration
	hold        time.Duration
	delta       bool
	serverPid   int
	extensions  int
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.target, "target", "127.0.0.1:18000", "xDS server host:port")
	flag.IntVar(&o.connections, "connections", 1000, "simulated Envoys (one connection and one ADS stream each)")
	flag.IntVar(&o.sources, "sources", 20, "spread connections over this many source addresses 127.0.1.x (0: the default route)")
	flag.DurationVar(&o.within, "within", 2*time.Second, "start every connection within this time, evenly spaced")
	flag.DurationVar(&o.timeout, "timeout", 120*time.Second, "give up on proxies not synced this long after the storm began")
	flag.DurationVar(&o.hold, "hold", 0, "keep every stream open this long after the last one synced")
	flag.BoolVar(&o.delta, "delta", false, "Delta xDS instead of SotW")
	flag.IntVar(&o.serverPid, "server-pid", 0, "server process, for its CPU time and RSS (/proc/PID)")
	flag.IntVar(&o.extensions, "extensions", 0, "extensions listed in each proxy's Node, as Envoy lists those compiled in (1.40: 516, ~61 KB); 0: a bare node")
	flag.Parse()
	if o.connections < 1 {
		log.Fatal("stormclient: -connections must be at least 1")
	}
	return o
}

func main() {
	o := parseFlags()
	path := sotwPath
	if o.delta {
		path = deltaPath
	}
	headers := headerBlock(o.target, path)
	tail := envoyNodeTail(o.extensions)
	// The first request is written without waiting for flow-control credit: it must fit the
	// server's initial stream window (HTTP/2's default 65,535 bytes), as Envoy's 61 KB one does.
	if first := len(request{node: node("storm-0000000", "storm", tail), typeURL: clusterType}.sotw()) + 5; first > 65_535 {
		log.Fatalf("stormclient: -extensions %d makes a %d-byte first request, over the 65,535-byte initial window", o.extensions, first)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan result, o.connections)
	serverCPU0, clientCPU0 := proc.CPUSeconds(o.serverPid), proc.SelfCPUSeconds()
	t0 := time.Now()
	deadline := time.AfterFunc(o.timeout, cancel)
	for i := 0; i < o.connections; i++ {
		if wait := time.Until(t0.Add(o.within * time.Duration(i) / time.Duration(o.connections))); wait > 0 {
			time.Sleep(wait)
		}
		p := &proxy{id: i, delta: o.delta, t0: t0, nodeTail: tail}
		if o.sources > 0 {
			p.source = net.IPv4(127, 0, 1, byte(1+i%o.sources))
		}
		go p.run(ctx, o.target, headers, results)
	}
	startedMs := float64(time.Since(t0).Microseconds()) / 1000
	all := make([]result, 0, o.connections)
	for len(all) < o.connections {
		all = append(all, <-results)
	}
	deadline.Stop()
	s := summarize(all, o, startedMs)
	s.ServerCPUSeconds = round(proc.CPUSeconds(o.serverPid) - serverCPU0)
	s.ClientCPUSeconds = round(proc.SelfCPUSeconds() - clientCPU0)
	s.ServerRSSMiB = round(proc.RSSMiB(o.serverPid))
	time.Sleep(o.hold)
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
}

type summary struct {
	Protocol         string         `json:"protocol"`
	Connections      int            `json:"connections"`
	WithinMs         int64          `json:"withinMs"`
	StartedMs        float64        `json:"startedMs"`
	Outcomes         map[string]int `json:"outcomes"`
	Details          map[string]int `json:"details,omitempty"`
	SyncP50Ms        float64        `json:"syncP50Ms"`
	SyncP99Ms        float64        `json:"syncP99Ms"`
	SyncMaxMs        float64        `json:"syncMaxMs"`
	LastSyncedMs     float64        `json:"lastSyncedMs"`
	ServerCPUSeconds float64        `json:"serverCpuSeconds"`
	ClientCPUSeconds float64        `json:"clientCpuSeconds"`
	ServerRSSMiB     float64        `json:"serverRssMiB"`
}

// addresses in error messages, so that alike failures count together.
var addresses = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func summarize(all []result, o options, startedMs float64) summary {
	s := summary{Protocol: "sotw", Connections: o.connections, WithinMs: o.within.Milliseconds(), StartedMs: round(startedMs),
		Outcomes: map[string]int{}, Details: map[string]int{}}
	if o.delta {
		s.Protocol = "delta"
	}
	var lat []float64
	for _, r := range all {
		s.Outcomes[string(r.outcome)]++
		if d := addresses.ReplaceAllString(r.detail, "ADDR"); d != "" && (len(s.Details) < 20 || s.Details[d] > 0) {
			s.Details[d]++
		}
		if r.outcome == synced {
			lat = append(lat, r.syncedMs-r.startedMs)
			s.LastSyncedMs = max(s.LastSyncedMs, round(r.syncedMs))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return round(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	s.SyncP50Ms, s.SyncP99Ms, s.SyncMaxMs = pct(0.50), pct(0.99), pct(1)
	return s
}

func round(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
