// loadclient drives an xDS server with N simulated Envoys (one HTTP/2 connection and one ADS
// stream each; SotW or Delta; CDS wildcard, then EDS for the clusters CDS named; every response
// ACKed), then changes one endpoint weight through the server's own HTTP API, several rounds,
// and prints, per round, one JSON line: how long after the trigger each stream received the
// changed assignment, its own CPU and the server's (from /proc), and bytes received per stream.
//
//	loadclient -target 127.0.0.1:18000 -streams 1000 [-delta] -rounds 5 -server-pid 1234 \
//	  -cluster svc-0007 -address 10.0.7.4 -port 8080 -weight-base 100 \
//	  -trigger 'PATCH http://127.0.0.1:8080/v1/clusters/svc-0007/endpoints/10.0.7.4/8080' \
//	  -body '{"weight":{w}}'
//
// -dump FILE: one stream, write its first CDS and EDS responses to FILE, and exit.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fulcrum.local/bench-go/internal/dump"
	"fulcrum.local/bench-go/internal/proc"
)

// reconnects counts streams the server ended and the client opened again.
var reconnects atomic.Int64

type options struct {
	target, trigger, body, dumpPath string
	cpuProfile                      string
	streams, rounds, serverPid      int
	concurrency                     int
	weightBase                      uint
	delta                           bool
	subscribeFraction               float64
	watch                           *watchTarget
	timeout, settle                 time.Duration
}

func parseFlags() options {
	o := options{watch: &watchTarget{}}
	var port uint
	flag.StringVar(&o.target, "target", "127.0.0.1:18000", "xDS server host:port")
	flag.IntVar(&o.streams, "streams", 1, "simulated Envoys (one connection and one ADS stream each)")
	flag.BoolVar(&o.delta, "delta", false, "Delta xDS instead of SotW")
	flag.Float64Var(&o.subscribeFraction, "subscribe-fraction", 1, "each stream asks EDS for this fraction of the clusters, its own subset (1: all, as Envoy)")
	flag.IntVar(&o.rounds, "rounds", 3, "weight changes")
	flag.IntVar(&o.serverPid, "server-pid", 0, "server process, for its CPU time (/proc/PID/stat)")
	flag.IntVar(&o.concurrency, "connect-concurrency", 200, "streams connecting and syncing at once")
	flag.StringVar(&o.trigger, "trigger", "", "METHOD URL of the change; {w} is replaced by the new weight")
	flag.StringVar(&o.body, "body", "", "JSON body of the change; {w} is replaced by the new weight")
	flag.StringVar(&o.watch.cluster, "cluster", "", "cluster whose assignment changes")
	flag.StringVar(&o.watch.address, "address", "", "address of the endpoint whose weight changes")
	flag.UintVar(&port, "port", 0, "port of that endpoint")
	flag.UintVar(&o.weightBase, "weight-base", 100, "round r sets weight base+r (must differ from the current weight)")
	flag.DurationVar(&o.timeout, "timeout", 300*time.Second, "how long to wait for the sync and for each round")
	flag.DurationVar(&o.settle, "settle", 200*time.Millisecond, "quiet time after a round before the CPU is read")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's CPU profile of the rounds here (go tool pprof)")
	flag.StringVar(&o.dumpPath, "dump", "", "write the first CDS and EDS responses of one stream here and exit")
	flag.Parse()
	o.watch.port = uint32(port)
	return o
}

func main() {
	o := parseFlags()
	raiseFileLimit()
	// Fewer collections: the heap is mostly long-lived connections; memory is plentiful here.
	debug.SetGCPercent(400)
	if o.dumpPath != "" {
		o.streams = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := newRound(o.streams)
	streams := make([]*stream, o.streams)
	for i := range streams {
		streams[i] = &stream{id: i, delta: o.delta, watch: o.watch, run: run, synced: make(chan struct{}), dump: o.dumpPath != "", fraction: o.subscribeFraction}
	}
	start := time.Now()
	failed := connectAll(ctx, o, streams)
	emit(map[string]any{"type": "synced", "streams": o.streams, "failed": failed, "reconnects": reconnects.Load(), "ms": ms(time.Since(start))})
	if failed > 0 {
		log.Fatalf("loadclient: %d of %d streams did not sync within %s", failed, o.streams, o.timeout)
	}
	if o.dumpPath != "" {
		if err := dump.Write(o.dumpPath, streams[0].dumped); err != nil {
			log.Fatalf("loadclient: %v", err)
		}
		return
	}
	trig, err := newTrigger(o.trigger, o.body)
	if err != nil {
		log.Fatalf("loadclient: %v", err)
	}
	// The rounds only (not the connects).
	stopProfile, err := proc.ProfileCPU(o.cpuProfile)
	if err != nil {
		log.Fatalf("loadclient: %v", err)
	}
	for r := 1; r <= o.rounds; r++ {
		emit(playRound(o, trig, run, streams, r))
	}
	stopProfile()
}

// connectAll opens every stream, at most `concurrency` connecting at once (each holds its slot
// until its initial sync), and returns how many did not sync in time.
func connectAll(ctx context.Context, o options, streams []*stream) int {
	slots := make(chan struct{}, o.concurrency)
	deadline, stop := context.WithTimeout(ctx, o.timeout)
	defer stop()
	failed := 0
	var mu sync.Mutex
	for _, s := range streams {
		slots <- struct{}{}
		go func() {
			// As Envoy does: a stream the server ends is opened again after a back-off.
			for {
				err := s.serve(ctx, o.target)
				if err == nil || ctx.Err() != nil {
					return
				}
				mu.Lock()
				if reconnects.Add(1) <= 5 {
					log.Printf("loadclient: %v (reconnecting; only the first 5 are shown)", err)
				}
				mu.Unlock()
				time.Sleep(250*time.Millisecond + time.Duration(rand.Int64N(int64(750*time.Millisecond))))
			}
		}()
		go func() {
			defer func() { <-slots }()
			select {
			case <-s.synced:
			case <-time.After(o.timeout):
			}
		}()
	}
	for _, s := range streams {
		select {
		case <-s.synced:
		case <-deadline.Done(): // stays closed: every stream still unsynced counts
			failed++
		}
	}
	return failed
}

// playRound changes the weight once and waits until every stream has it (or the timeout).
func playRound(o options, trig *trigger, run *round, streams []*stream, r int) map[string]any {
	weight := uint32(o.weightBase) + uint32(r)
	bytesBefore := totalBytes(streams)
	pushesBefore := pushCounts(streams)
	cpuBefore, serverBefore := selfCPU(), serverCPU(o.serverPid)
	waitBefore := runQueueWait()
	run.begin(weight)
	t0 := time.Now()
	run.start.Store(t0.UnixNano())
	apiErr := trig.fire(weight)
	apiMs := ms(time.Since(t0))
	deadline := t0.Add(o.timeout)
	expected := watchers(streams)
	for apiErr == nil && run.count.Load() < expected && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	allMs := ms(time.Since(t0))
	waitMs := ms(runQueueWait() - waitBefore)
	time.Sleep(o.settle)
	out := map[string]any{
		"type": "round", "round": r, "weight": weight, "streams": len(streams),
		// The trigger's wall-clock time (ms since the epoch), to line rounds up with a server trace.
		"t0":       float64(t0.UnixMicro()) / 1000,
		"received": run.count.Load(), "expected": expected, "reconnects": reconnects.Load(), "apiMs": apiMs, "allReceivedMs": allMs,
		// How long this client's threads waited for a core during the round (a slow round may be ours).
		"clientRunQueueMs": waitMs,
		"clientCpuMs":      ms(selfCPU() - cpuBefore), "serverCpuMs": ms(serverCPU(o.serverPid) - serverBefore),
		"bytesPerStream": float64(totalBytes(streams)-bytesBefore) / float64(len(streams)),
	}
	if apiErr != nil {
		out["error"] = apiErr.Error()
	}
	for k, v := range latencies(run, t0) {
		out[k] = v
	}
	for k, v := range pushesPerStream(streams, pushesBefore) {
		out[k] = v
	}
	return out
}

// watchers counts the streams whose subscription holds the watched cluster: those a change must reach.
func watchers(streams []*stream) int64 {
	var n int64
	for _, s := range streams {
		if s.watching.Load() {
			n++
		}
	}
	return n
}

func pushCounts(streams []*stream) []int64 {
	n := make([]int64, len(streams))
	for i, s := range streams {
		n[i] = s.pushes.Load()
	}
	return n
}

// pushesPerStream: EDS responses each stream received during the round (a burst of writes may
// reach an Envoy as one push or as many).
func pushesPerStream(streams []*stream, before []int64) map[string]any {
	xs := make([]float64, len(streams))
	for i, s := range streams {
		xs[i] = float64(s.pushes.Load() - before[i])
	}
	slices.Sort(xs)
	return map[string]any{"pushesP50": quantile(xs, 0.5), "pushesP99": quantile(xs, 0.99), "pushesMax": quantile(xs, 1)}
}

func totalBytes(streams []*stream) int64 {
	var n int64
	for _, s := range streams {
		n += s.bytes.Load()
	}
	return n
}

func emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatalf("loadclient: %v", err)
	}
	fmt.Println(string(b))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// raiseFileLimit lifts the soft open-files limit to the hard one: 10,000 connections need it.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(os.Stderr, "loadclient: cannot raise the open-files limit: %v\n", err)
	}
}
