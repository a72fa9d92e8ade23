// grpcfleet: a fleet of queueing gRPC backends for bench/proxyless.ts. Each backend is its own
// gRPC server on 127.0.0.1 with a number of workers (its capacity) and exponentially distributed
// service times; a call that finds every worker busy waits in FIFO order (full queue:
// RESOURCE_EXHAUSTED). Every answer carries per-call ORCA in its trailer, as a real backend
// would: cpu_utilization (the workers' measured busy time over the last second), rps_fractional
// and eps (answers and errors per second, which gRPC's client-side weighted round robin needs)
// and named_metrics.latency_ms (recent mean latency, fulcrum's default latency metric).
//
//	grpcfleet --workers 4,4,4,8 --service-ms 40 --seed 1
//
// It prints one JSON line {"ports":[...]} and then reads commands on stdin, one a line:
//
//	fail I F      backend I answers a fraction F of its calls UNAVAILABLE at once (no worker time)
//	slow I X      backend I's calls wait X−1 mean service times more after their work (CPU unchanged)
//	workers I N   backend I has N workers
//	hang I 1|0    backend I stops answering (its calls wait, taking no worker, until their
//	              deadline: a black hole), or answers again (the calls that waited go on)
//	dead I 1|0    backend I dies (listener and connections closed: connections refused) or
//	              serves again on the same port
//	mark          print {"busyMs":[...],"capacityMs":[...],"ok":[...],"failed":[...]} (running sums)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/status"

	"fulcrum.local/bench-go/internal/rawcodec"
)

type server struct {
	index   int
	b       *backend
	meanMs  float64
	randMu  sync.Mutex
	random  *rand.Rand
	started time.Time
	// The gRPC server on port; nil while the backend is dead (kill, revive).
	g    *grpc.Server
	port int
}

func (s *server) draw() float64 {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.random.Float64()
}

func (s *server) exp() time.Duration {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return time.Duration(s.random.ExpFloat64() * s.meanMs * float64(time.Millisecond))
}

// do is the one method: queue for a worker, work, maybe wait on a slow dependency, answer.
func (s *server) do(ctx context.Context) ([]byte, error) {
	start := time.Now()
	defer s.report(ctx)
	s.b.mu.Lock()
	fastFail, slow, hung := s.b.fastFail, s.b.slowFactor, s.b.hung
	s.b.mu.Unlock()
	if hung != nil {
		select {
		case <-ctx.Done():
			s.b.count(false, 0)
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-hung:
		}
	}
	if fastFail > 0 && s.draw() < fastFail {
		s.b.count(false, 0)
		return nil, status.Error(codes.Unavailable, "fast fail")
	}
	if !s.b.acquire(start) {
		s.b.count(false, 0)
		return nil, status.Error(codes.ResourceExhausted, "queue full")
	}
	time.Sleep(s.exp())
	s.b.release(time.Now())
	if slow > 1 {
		time.Sleep(time.Duration((slow - 1) * s.meanMs * float64(time.Millisecond)))
	}
	s.b.count(true, time.Since(start))
	return []byte(strconv.Itoa(s.index)), nil
}

func (s *server) report(ctx context.Context) {
	util, rps, eps, latency := s.b.recent(time.Now())
	rec := orca.CallMetricsRecorderFromContext(ctx)
	rec.SetCPUUtilization(util)
	rec.SetQPS(rps)
	rec.SetEPS(eps)
	if latency > 0 {
		rec.SetNamedMetric("latency_ms", latency)
	}
}

func serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "fulcrum.bench.Work",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Do",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				var req []byte
				if err := dec(&req); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					out, err := srv.(*server).do(ctx)
					return &out, err
				}
				if interceptor == nil {
					return h(ctx, &req)
				}
				return interceptor(ctx, &req, &grpc.UnaryServerInfo{Server: srv, FullMethod: rawcodec.Method}, h)
			},
		}},
	}
}

// listen serves s on 127.0.0.1:port (0: any free port, kept in s.port for a revival).
func listen(s *server, port int) error {
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.ForceServerCodec(rawcodec.Codec{}), orca.CallMetricsServerOption(nil))
	g.RegisterService(serviceDesc(), s)
	go func() { _ = g.Serve(lis) }()
	s.g, s.port = g, lis.Addr().(*net.TCPAddr).Port
	return nil
}

// kill closes the backend's listener and connections at once (calls in flight end UNAVAILABLE);
// new connections are refused until revive.
func (s *server) kill() {
	if s.g != nil {
		s.g.Stop()
		s.g = nil
	}
}

// revive serves the backend again on the same port.
func (s *server) revive() error {
	if s.g != nil {
		return nil
	}
	return listen(s, s.port)
}

func main() {
	workers := flag.String("workers", "4,4,4,8", "workers per backend")
	serviceMs := flag.Float64("service-ms", 40, "mean service time, ms")
	seed := flag.Uint64("seed", 1, "seed of the service times")
	flag.Parse()
	now := time.Now()
	var fleet []*server
	var ports []int
	for i, w := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			log.Fatalf("--workers: %q is not a positive integer", w)
		}
		s := &server{index: i, b: newBackend(n, now), meanMs: *serviceMs, random: rand.New(rand.NewPCG(*seed, uint64(1000+i))), started: now}
		if err := listen(s, 0); err != nil {
			log.Fatal(err)
		}
		fleet = append(fleet, s)
		ports = append(ports, s.port)
	}
	go sampleEvery(fleet)
	emit(map[string]any{"ports": ports})
	commands(fleet)
}

func sampleEvery(fleet []*server) {
	for now := range time.Tick(bucket) {
		for _, s := range fleet {
			s.b.sample(now)
		}
	}
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
}

// commands runs stdin's commands until it closes; a bad one is reported on stderr and skipped.
func commands(fleet []*server) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := command(fleet, strings.Fields(in.Text())); err != nil {
			log.Printf("grpcfleet: %q: %v", in.Text(), err)
		}
	}
}

func command(fleet []*server, f []string) error {
	if len(f) == 1 && f[0] == "mark" {
		emit(marks(fleet))
		return nil
	}
	if len(f) != 3 {
		return fmt.Errorf("want mark, or fail|slow|workers|hang|dead INDEX VALUE")
	}
	i, err := strconv.Atoi(f[1])
	if err != nil || i < 0 || i >= len(fleet) {
		return fmt.Errorf("no backend %s", f[1])
	}
	v, err := strconv.ParseFloat(f[2], 64)
	if err != nil || v < 0 {
		return fmt.Errorf("bad value %s", f[2])
	}
	b := fleet[i].b
	switch f[0] {
	case "fail":
		b.mu.Lock()
		b.fastFail = v
		b.mu.Unlock()
	case "slow":
		b.mu.Lock()
		b.slowFactor = v
		b.mu.Unlock()
	case "workers":
		b.setWorkers(int(v), time.Now())
	case "hang":
		b.setHung(v != 0)
	case "dead":
		if v == 0 {
			return fleet[i].revive()
		}
		fleet[i].kill()
	default:
		return fmt.Errorf("unknown command %s", f[0])
	}
	return nil
}

func marks(fleet []*server) map[string][]float64 {
	out := map[string][]float64{"busyMs": nil, "capacityMs": nil, "ok": nil, "failed": nil}
	now := time.Now()
	for _, s := range fleet {
		t := s.b.snapshot(now)
		out["busyMs"] = append(out["busyMs"], float64(t.busy)/float64(time.Millisecond))
		out["capacityMs"] = append(out["capacityMs"], float64(t.capacity)/float64(time.Millisecond))
		out["ok"] = append(out["ok"], float64(t.ok))
		out["failed"] = append(out["failed"], float64(t.failed))
	}
	return out
}
