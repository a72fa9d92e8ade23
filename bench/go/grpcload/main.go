// grpcload: an open-loop load of a proxyless grpc-go xDS client, for bench/proxyless.ts. It dials
// an xds:/// target (bootstrap in GRPC_XDS_BOOTSTRAP_CONFIG, which grpc-go reads when it starts),
// warms up until every backend has answered, prints {"started":true}, then sends calls at seeded
// Poisson arrivals (each call its own goroutine, so a slow backend never holds the rate back) for
// --duration, and prints one JSON line with every call: when it was sent (ms after the start), its
// latency, its status code and the backend that answered (-1: none).
//
//	GRPC_XDS_BOOTSTRAP_CONFIG='{...}' grpcload --target xds:///work --rps 280 --duration 40s --backends 4
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"fulcrum.local/bench-go/internal/rawcodec"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and the xDS balancers
)

type options struct {
	target   string
	rps      float64
	duration time.Duration
	deadline time.Duration
	warmup   time.Duration
	backends int
	seed     uint64
}

// calls is every call of the run, as columns (one JSON line, cheap to parse).
type calls struct {
	mu      sync.Mutex
	SentMs  []float64 `json:"sentMs"`
	Ms      []float64 `json:"ms"`
	Code    []string  `json:"code"`
	Backend []int     `json:"backend"`
}

func (c *calls) add(sent, took time.Duration, code string, backend int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.SentMs = append(c.SentMs, float64(sent)/float64(time.Millisecond))
	c.Ms = append(c.Ms, float64(took)/float64(time.Millisecond))
	c.Code = append(c.Code, code)
	c.Backend = append(c.Backend, backend)
}

// call makes one call; the backend is the reply's index.
func call(conn *grpc.ClientConn, deadline time.Duration, waitForReady bool) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req, reply := []byte{}, []byte{}
	err := conn.Invoke(ctx, rawcodec.Method, &req, &reply, grpc.ForceCodec(rawcodec.Codec{}), grpc.WaitForReady(waitForReady))
	if err != nil {
		return status.Code(err).String(), -1
	}
	i, err := strconv.Atoi(string(reply))
	if err != nil {
		return "BadReply", -1
	}
	return "OK", i
}

// warm calls one at a time until every backend has answered (gRPC's localities become READY one
// by one, and until then it picks among the ready ones).
func warm(conn *grpc.ClientConn, o options) error {
	seen := map[int]bool{}
	end := time.Now().Add(o.warmup)
	for len(seen) < o.backends {
		if time.Now().After(end) {
			return fmt.Errorf("only %d of %d backends answered within %s", len(seen), o.backends, o.warmup)
		}
		if code, b := call(conn, o.deadline, true); code == "OK" {
			seen[b] = true
		}
	}
	return nil
}

func run(conn *grpc.ClientConn, o options) *calls {
	out := &calls{}
	random := rand.New(rand.NewPCG(o.seed, 7))
	var wg sync.WaitGroup
	start := time.Now()
	next := time.Duration(0)
	for next < o.duration {
		time.Sleep(time.Until(start.Add(next)))
		sent := time.Since(start)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			code, b := call(conn, o.deadline, false)
			out.add(sent, time.Since(t), code, b)
		}()
		next += time.Duration(random.ExpFloat64() / o.rps * float64(time.Second))
	}
	wg.Wait()
	return out
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "xds:///work", "xds:/// target")
	flag.Float64Var(&o.rps, "rps", 100, "mean calls per second (Poisson)")
	flag.DurationVar(&o.duration, "duration", 40*time.Second, "how long to send")
	flag.DurationVar(&o.deadline, "deadline", 10*time.Second, "per-call deadline")
	flag.DurationVar(&o.warmup, "warmup", 60*time.Second, "how long every backend may take to answer once")
	flag.IntVar(&o.backends, "backends", 1, "backends that must answer before the load starts")
	flag.Uint64Var(&o.seed, "seed", 7, "seed of the arrivals")
	flag.Parse()
	if os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		log.Fatal("GRPC_XDS_BOOTSTRAP_CONFIG is not set")
	}
	conn, err := grpc.NewClient(o.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := warm(conn, o); err != nil {
		log.Fatal(err)
	}
	fmt.Println(`{"started":true}`)
	b, err := json.Marshal(run(conn, o))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
}
