// grpc-go-client: a proxyless gRPC client built on grpc-go's xDS support, for fulcrum's end to
// end tests (test/e2e/proxyless-grpc-go.test.ts). It dials an xds:/// target through a bootstrap
// that points at fulcrum, makes unary calls to the WhoAmI test service (JSON messages, see
// test/support/grpc-whoami.ts) and prints one JSON line: calls answered per backend id.
//
//	grpc-go-client --xds-port 18000 --target xds:///sessions --count 200 --hash-header x-user
//
// With --hash-header every call carries a distinct value in that header (user-0, user-1, ...),
// so a ring-hash route spreads calls by key; --header k=v (repeatable) adds a fixed header to
// every call (x-delay-ms=8000 makes the WhoAmI server answer that much later). With --hold, the process then stays up until stdin
// closes, so grpc-go keeps sending its load reports (LRS) to fulcrum.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

const whoAmIMethod = "/fulcrum.test.WhoAmI/WhoAmI"

// rawJSON carries the WhoAmI messages, which are JSON bytes rather than protobuf.
type rawJSON struct{}

func (rawJSON) Name() string { return "json" }

func (rawJSON) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawJSON: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawJSON) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawJSON: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

type options struct {
	xdsPort    int
	nodeID     string
	target     string
	count      int
	hashHeader string
	headers    headerFlags
	deadline   time.Duration
	hold       bool
}

// headerFlags collects repeated --header k=v flags as metadata pairs.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ",") }

func (h *headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	*h = append(*h, strings.ToLower(k), val)
	return nil
}

func parseFlags() options {
	var o options
	flag.IntVar(&o.xdsPort, "xds-port", 0, "fulcrum's xDS port on 127.0.0.1 (required unless GRPC_XDS_BOOTSTRAP_CONFIG is set)")
	flag.StringVar(&o.nodeID, "node-id", fmt.Sprintf("grpc-go-%d", os.Getpid()), "xDS node id")
	flag.StringVar(&o.target, "target", "", "e.g. xds:///sessions")
	flag.IntVar(&o.count, "count", 100, "calls to make, one after the other")
	flag.StringVar(&o.hashHeader, "hash-header", "", "header carrying a distinct key per call")
	flag.Var(&o.headers, "header", "key=value header on every call (repeatable)")
	flag.DurationVar(&o.deadline, "deadline", 10*time.Second, "per-call deadline")
	flag.BoolVar(&o.hold, "hold", false, "after printing, stay up until stdin closes (keeps LRS flowing)")
	flag.Parse()
	return o
}

func bootstrap(o options) string {
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      fmt.Sprintf("127.0.0.1:%d", o.xdsPort),
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{"id": o.nodeID, "cluster": "proxyless-go", "locality": map[string]any{"zone": "test"}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// result is the one line printed on stdout.
type result struct {
	Counts map[string]int `json:"counts"`
	Errors map[string]int `json:"errors"`
}

func run(conn *grpc.ClientConn, o options) result {
	res := result{Counts: map[string]int{}, Errors: map[string]int{}}
	for i := 0; i < o.count; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), o.deadline)
		if o.hashHeader != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, o.hashHeader, fmt.Sprintf("user-%d", i))
		}
		if len(o.headers) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, o.headers...)
		}
		req := []byte(fmt.Sprintf(`{"tag":"go-%d"}`, i))
		var reply []byte
		err := conn.Invoke(ctx, whoAmIMethod, &req, &reply, grpc.ForceCodec(rawJSON{}), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			res.Errors[status.Code(err).String()]++
			continue
		}
		var who struct {
			Server string `json:"server"`
		}
		if err := json.Unmarshal(reply, &who); err != nil {
			res.Errors["bad reply"]++
			continue
		}
		res.Counts[who.Server]++
	}
	return res
}

func main() {
	o := parseFlags()
	if o.target == "" {
		fmt.Fprintln(os.Stderr, "--target is required")
		os.Exit(2)
	}
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		if o.xdsPort == 0 {
			fmt.Fprintln(os.Stderr, "--xds-port is required without a bootstrap in the environment")
			os.Exit(2)
		}
		// grpc-go reads the bootstrap variables once, when its packages initialise: set it and
		// start again.
		self, err := os.Executable()
		if err == nil {
			err = syscall.Exec(self, os.Args, append(os.Environ(), "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap(o)))
		}
		fmt.Fprintln(os.Stderr, "re-exec with a bootstrap:", err)
		os.Exit(1)
	}
	conn, err := grpc.NewClient(o.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	out, err := json.Marshal(run(conn, o))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	if o.hold {
		// Load reports belong to the channel's cluster balancer: keep the channel open while
		// grpc-go reports the calls above to fulcrum, until the test closes stdin.
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	}
}
