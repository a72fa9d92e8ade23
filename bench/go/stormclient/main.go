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
// With -tls-ca each proxy speaks TLS (mTLS with -tls-cert/-tls-key) and keeps its own session
// cache, as an Envoy does. With -resume every proxy first connects and syncs once, unhurried,
// so it holds a session ticket; the client then prints {"warm":N} and waits for a line "go PID"
// on stdin (the server restarted meanwhile, PID its new process) before the storm: the storm is
// then a fleet reconnecting after a restart, each proxy offering its ticket.
//
//	stormclient -target 127.0.0.1:18000 -connections 10000 -within 2s [-delta] [-server-pid PID]
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
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
	tlsCA       string
	tlsCert     string
	tlsKey      string
	tlsMax      string
	resume      bool
	nodePrefix  string
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
	flag.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA the server's certificate chains to: TLS (ALPN h2, server name localhost) instead of h2c")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate (mTLS), with -tls-key")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM key of -tls-cert")
	flag.StringVar(&o.tlsMax, "tls-max", "1.2", "highest TLS version offered: 1.2 (what Envoy offers upstream by default) or 1.3")
	flag.StringVar(&o.nodePrefix, "node-prefix", "storm", "proxy i's node id is PREFIX-i (a soak gives each round's fleet new ids, as replaced pods have)")
	flag.BoolVar(&o.resume, "resume", false, `with -tls-ca: connect and sync every proxy once first, print {"warm":N}, then storm on the line "go PID" from stdin, each proxy offering its session ticket`)
	flag.Parse()
	if o.connections < 1 {
		log.Fatal("stormclient: -connections must be at least 1")
	}
	if o.resume && o.tlsCA == "" {
		log.Fatal("stormclient: -resume needs -tls-ca")
	}
	return o
}

// tlsConfigs is one TLS config per proxy, each with its own session cache (nil without -tls-ca).
func tlsConfigs(o options) []*tls.Config {
	if o.tlsCA == "" {
		return nil
	}
	pem, err := os.ReadFile(o.tlsCA)
	if err != nil {
		log.Fatalf("stormclient: -tls-ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatalf("stormclient: -tls-ca %s: no PEM certificate", o.tlsCA)
	}
	base := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2"}, MaxVersion: tls.VersionTLS12}
	switch o.tlsMax {
	case "1.2":
	case "1.3":
		base.MaxVersion = tls.VersionTLS13
	default:
		log.Fatalf("stormclient: -tls-max: 1.2 or 1.3, got %q", o.tlsMax)
	}
	if o.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			log.Fatalf("stormclient: -tls-cert/-tls-key: %v", err)
		}
		base.Certificates = []tls.Certificate{pair}
	}
	out := make([]*tls.Config, o.connections)
	for i := range out {
		c := base.Clone()
		c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		out[i] = c
	}
	return out
}

// warm connects and syncs every proxy once, 100 at a time (not a storm), so each holds a session
// ticket, then closes them all; returns how many synced.
func warm(o options, headers []byte, tail []byte, configs []*tls.Config) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan result, o.connections)
	slots := make(chan struct{}, 100)
	go func() {
		for i := 0; i < o.connections; i++ {
			slots <- struct{}{}
			go newProxy(o, i, time.Now(), tail, configs).run(ctx, o.target, headers, results)
		}
	}()
	n := 0
	for i := 0; i < o.connections; i++ {
		if r := <-results; r.outcome == synced {
			n++
		}
		<-slots
	}
	return n
}

// newProxy is proxy i of the fleet, timed from t0: its source address and its TLS config (configs is nil in clear).
func newProxy(o options, i int, t0 time.Time, tail []byte, configs []*tls.Config) *proxy {
	p := &proxy{id: i, delta: o.delta, t0: t0, nodeTail: tail, idPrefix: o.nodePrefix}
	if configs != nil {
		p.tls = configs[i]
	}
	if o.sources > 0 {
		p.source = net.IPv4(127, 0, 1, byte(1+i%o.sources))
	}
	return p
}

// awaitGo reads stdin up to the line "go PID" and returns PID.
func awaitGo() int {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var pid int
		if _, err := fmt.Sscanf(in.Text(), "go %d", &pid); err == nil {
			return pid
		}
	}
	log.Fatal(`stormclient: stdin ended before "go PID"`)
	return 0
}

func main() {
	o := parseFlags()
	// The live heap is mostly the proxies' connection buffers (~25 KB each, no pointers); collecting
	// every time it doubled was ~10 % of the client's CPU during a storm (bench/RESULTS.md, client30).
	// A GOGC set in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	path := sotwPath
	if o.delta {
		path = deltaPath
	}
	scheme := "http"
	if o.tlsCA != "" {
		scheme = "https"
	}
	headers := headerBlock(o.target, path, scheme)
	tail := envoyNodeTail(o.extensions)
	// The first request is written without waiting for flow-control credit: it must fit the
	// server's initial stream window (HTTP/2's default 65,535 bytes), as Envoy's 61 KB one does.
	if first := partsSize(request{node: nodeHead("storm-0000000", "storm"), nodeTail: tail, typeURL: clusterType}.sotw()) + 5; first > 65_535 {
		log.Fatalf("stormclient: -extensions %d makes a %d-byte first request, over the 65,535-byte initial window", o.extensions, first)
	}
	configs := tlsConfigs(o)
	if o.resume {
		out, _ := json.Marshal(map[string]int{"warm": warm(o, headers, tail, configs)})
		fmt.Println(string(out))
		o.serverPid = awaitGo()
	}
	stopProfile, err := proc.ProfileCPU(o.cpuProfile)
	if err != nil {
		log.Fatalf("stormclient: -cpuprofile: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan result, o.connections)
	before := takeReadings(o.serverPid)
	t0 := time.Now()
	deadline := time.AfterFunc(o.timeout, cancel)
	for i := 0; i < o.connections; i++ {
		if wait := time.Until(t0.Add(o.within * time.Duration(i) / time.Duration(o.connections))); wait > 0 {
			time.Sleep(wait)
		}
		go newProxy(o, i, t0, tail, configs).run(ctx, o.target, headers, results)
	}
	startedMs := float64(time.Since(t0).Microseconds()) / 1000
	all := make([]result, 0, o.connections)
	for len(all) < o.connections {
		all = append(all, <-results)
	}
	deadline.Stop()
	s := summarize(all, o, startedMs)
	if configs != nil {
		resumed := 0
		for _, r := range all {
			if r.resumed {
				resumed++
			}
		}
		s.TLSResumed = &resumed
	}
	takeReadings(o.serverPid).since(before, &s)
	s.ServerRSSMiB = round(proc.RSSMiB(o.serverPid))
	stopProfile()
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
	// The CPU of the server's main thread (thread id = pid) in the storm: a node server's event
	// loop, which bounds it when this is near the storm's length. -1 when unknown.
	ServerMainThreadSeconds float64 `json:"serverMainThreadSeconds"`
	// The host's TcpExt ListenOverflows during the storm (all listening sockets of the network
	// namespace; -1 when unknown): the kernel counts a SYN it drops for a full accept queue (that
	// client connects a second later, on its SYN's retry) and a completed handshake it cannot queue,
	// so it counts events, not proxies. Time a connection waits in the accept queue shows in the
	// "cds" phase (connect returns before the server accepts).
	ListenOverflows int64   `json:"listenOverflows"`
	ServerRSSMiB    float64 `json:"serverRssMiB"`
	// With -tls-ca: the proxies whose TLS handshake resumed a session (absent without TLS).
	TLSResumed *int `json:"tlsResumed,omitempty"`
	// The synced proxies' time in each step, p50 and p99 ms: connect, the TLS handshake (with
	// -tls-ca), write the first request, wait for the first response (CDS: includes any wait in
	// the server's accept queue), then for the rest (EDS).
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
			if o.tlsCA != "" {
				phases["tls"] = append(phases["tls"], r.handshakenMs-r.connectedMs)
			}
			phases["send"] = append(phases["send"], r.sentMs-r.handshakenMs)
			phases["cds"] = append(phases["cds"], r.firstMs-r.sentMs)
			phases["eds"] = append(phases["eds"], r.syncedMs-r.firstMs)
			s.LastSyncedMs = max(s.LastSyncedMs, round(r.syncedMs))
		}
	}
	s.SyncP50Ms, s.SyncP99Ms, s.SyncMaxMs = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	s.Phases = map[string][2]float64{}
	for name, xs := range phases {
		s.Phases[name] = [2]float64{percentile(xs, 0.50), percentile(xs, 0.99)}
	}
	return s
}

// percentile p of xs (sorted in place), rounded; 0 when empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return round(xs[min(len(xs)-1, int(p*float64(len(xs))))])
}

func round(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// readings is what the storm's figures are differences of, read together at its start and end.
type readings struct {
	serverUser, serverSys, serverMain float64 // serverMain -1 when unknown
	clientUser, clientSys             float64
	overflows                         int64 // -1 when unknown
}

func takeReadings(serverPid int) readings {
	var r readings
	r.serverUser, r.serverSys = proc.CPUSplit(serverPid)
	r.serverMain = proc.ThreadCPUSeconds(serverPid, serverPid)
	r.clientUser, r.clientSys = proc.SelfCPUSplit()
	r.overflows = proc.ListenOverflows()
	return r
}

// since writes the storm's CPU and overflow figures (now minus `before`) into s.
func (r readings) since(before readings, s *summary) {
	s.ServerCPUSeconds = round(r.serverUser + r.serverSys - before.serverUser - before.serverSys)
	s.ServerSysSeconds = round(r.serverSys - before.serverSys)
	s.ClientCPUSeconds = round(r.clientUser + r.clientSys - before.clientUser - before.clientSys)
	s.ClientSysSeconds = round(r.clientSys - before.clientSys)
	s.ServerMainThreadSeconds, s.ListenOverflows = -1, -1
	if r.serverMain >= 0 && before.serverMain >= 0 {
		s.ServerMainThreadSeconds = round(r.serverMain - before.serverMain)
	}
	if r.overflows >= 0 && before.overflows >= 0 {
		s.ListenOverflows = r.overflows - before.overflows
	}
}
