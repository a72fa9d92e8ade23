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
	"runtime/debug"
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
	cpuProfile  string
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
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this client's CPU profile (pprof) to this file")
	flag.Parse()
	if o.connections < 1 {
		log.Fatal("stormclient: -connections must be at least 1")
	}
	return o
}

func main() {
	o := parseFlags()
	// The live heap is mostly the proxies' connection buffers (~25 KB each, no pointers); collecting
	// every time it doubled was ~10 % of the client's CPU during a storm (bench/RESULTS.md, client30).
	debug.SetGCPercent(400)
	path := sotwPath
	if o.delta {
		path = deltaPath
	}
	headers := headerBlock(o.target, path)
	tail := envoyNodeTail(o.extensions)
	// The first request is written without waiting for flow-control credit: it must fit the
	// server's initial stream window (HTTP/2's default 65,535 bytes), as Envoy's 61 KB one does.
	if first := len(joined(request{node: nodeHead("storm-0000000", "storm"), nodeTail: tail, typeURL: clusterType}.sotw())) + 5; first > 65_535 {
		log.Fatalf("stormclient: -extensions %d makes a %d-byte first request, over the 65,535-byte initial window", o.extensions, first)
	}
	stopProfile, err := proc.ProfileCPU(o.cpuProfile)
	if err != nil {
		log.Fatalf("stormclient: -cpuprofile: %v", err)
	}
	defer stopProfile()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan result, o.connections)
	serverCPU0, clientCPU0 := proc.CPUSeconds(o.serverPid), proc.SelfCPUSeconds()
	_, serverSys0 := proc.CPUSplit(o.serverPid)
	clientSys0 := proc.SelfSystemSeconds()
	threads0 := proc.ThreadCPUSeconds(o.serverPid)
	overflows0 := proc.ListenOverflows()
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
	_, serverSys := proc.CPUSplit(o.serverPid)
	s.ServerSysSeconds = round(serverSys - serverSys0)
	s.ClientSysSeconds = round(proc.SelfSystemSeconds() - clientSys0)
	s.ServerMainThreadSeconds = round(busiestThread(threads0, proc.ThreadCPUSeconds(o.serverPid)))
	if overflows0 >= 0 {
		s.ListenOverflows = proc.ListenOverflows() - overflows0
	}
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
	ServerSysSeconds float64        `json:"serverSysSeconds"` // of ServerCPUSeconds, in the kernel
	ClientSysSeconds float64        `json:"clientSysSeconds"`
	// The server's busiest thread's CPU in the storm (its event loop): near the storm's length, it is what bounds it.
	ServerMainThreadSeconds float64 `json:"serverMainThreadSeconds"`
	// Connections the kernel dropped from a full accept queue during the storm (host-wide): each
	// such proxy connects a second later, on its SYN's retry.
	ListenOverflows int64   `json:"listenOverflows"`
	ServerRSSMiB    float64 `json:"serverRssMiB"`
	// The synced proxies' time in each step, p50 and p99 ms: connect, write the first request,
	// wait for the first response (CDS), then for the rest (EDS).
	Phases map[string][2]float64 `json:"phases,omitempty"`
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
	phases := map[string][]float64{}
	for _, r := range all {
		s.Outcomes[string(r.outcome)]++
		if d := addresses.ReplaceAllString(r.detail, "ADDR"); d != "" && (len(s.Details) < 20 || s.Details[d] > 0) {
			s.Details[d]++
		}
		if r.outcome == synced {
			lat = append(lat, r.syncedMs-r.startedMs)
			phases["connect"] = append(phases["connect"], r.connectedMs-r.startedMs)
			phases["send"] = append(phases["send"], r.sentMs-r.connectedMs)
			phases["cds"] = append(phases["cds"], r.firstMs-r.sentMs)
			phases["eds"] = append(phases["eds"], r.syncedMs-r.firstMs)
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
	s.Phases = map[string][2]float64{}
	for name, xs := range phases {
		slices.Sort(xs)
		s.Phases[name] = [2]float64{round(xs[len(xs)/2]), round(xs[min(len(xs)-1, len(xs)*99/100)])}
	}
	return s
}

func round(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// busiestThread is the most CPU one thread spent between the two readings (by thread id).
func busiestThread(before, after map[int]float64) float64 {
	most := 0.0
	for tid, t := range after {
		most = max(most, t-before[tid])
	}
	return most
}
