package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"unsafe"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// within reports whether b's bytes lie inside backing's.
func within(b, backing []byte) bool {
	if len(b) == 0 || len(backing) == 0 {
		return false
	}
	start, end := uintptr(unsafe.Pointer(&backing[0])), uintptr(unsafe.Pointer(&backing[len(backing)-1]))
	at := uintptr(unsafe.Pointer(&b[0]))
	return at >= start && at <= end
}

// framesOf reads every frame in wire (after the client preface, when `preface`).
func framesOf(t *testing.T, wire []byte, preface bool) []http2.Frame {
	t.Helper()
	if preface {
		if !bytes.HasPrefix(wire, []byte(http2.ClientPreface)) {
			t.Fatalf("the connection does not start with the client preface: %q", wire[:min(len(wire), 24)])
		}
		wire = wire[len(http2.ClientPreface):]
	}
	fr := http2.NewFramer(nil, bytes.NewReader(wire))
	var out []http2.Frame
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			// The framer reuses its buffer: keep a copy of the payload.
			f = &dataCopy{d.FrameHeader, append([]byte(nil), d.Data()...)}
		}
		out = append(out, f)
	}
}

type dataCopy struct {
	http2.FrameHeader
	data []byte
}

// messagesOf joins the DATA frames' payloads and cuts them into gRPC messages.
func messagesOf(t *testing.T, frames []http2.Frame) [][]byte {
	t.Helper()
	var stream []byte
	for _, f := range frames {
		if d, ok := f.(*dataCopy); ok {
			if d.Flags != 0 || d.StreamID != 1 || len(d.data) > maxFrame {
				t.Fatalf("DATA frame on stream %d, flags %v, %d bytes", d.StreamID, d.Flags, len(d.data))
			}
			stream = append(stream, d.data...)
		}
	}
	var msgs [][]byte
	for len(stream) > 0 {
		n := int(binary.BigEndian.Uint32(stream[1:5]))
		msgs = append(msgs, stream[5:5+n])
		stream = stream[5+n:]
	}
	return msgs
}

// The connection starts with the preface, SETTINGS, WINDOW_UPDATE and HEADERS (flushed before the
// writev), then the first request in DATA frames of stream 1, no END_STREAM, no frame over 16 KiB.
func TestOpenWritesThePrefaceAndHeadersBeforeTheFirstRequest(t *testing.T) {
	client, server := net.Pipe()
	var wire bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&wire, server); close(done) }()
	tail := envoyNodeTail(516)
	p := &proxy{id: 7, conn: client, nodeTail: tail}
	if err := p.open(headerBlock("127.0.0.1:1", sotwPath, "http")); err != nil {
		t.Fatal(err)
	}
	_ = client.Close()
	<-done
	frames := framesOf(t, wire.Bytes(), true)
	var kinds []http2.FrameType
	for _, f := range frames[:3] {
		kinds = append(kinds, f.Header().Type)
	}
	if kinds[0] != http2.FrameSettings || kinds[1] != http2.FrameWindowUpdate || kinds[2] != http2.FrameHeaders {
		t.Fatalf("the first frames are %v", kinds)
	}
	msgs := messagesOf(t, frames)
	want := joined(request{node: nodeHead("storm-7", "storm"), nodeTail: tail, typeURL: clusterType}.sotw())
	if len(msgs) != 1 || !bytes.Equal(msgs[0], want) {
		t.Fatalf("%d messages; the first request is not the encoded one", len(msgs))
	}
}

// Over TLS (p.tls set) the first request is written as one buffer, byte for byte what the
// writev writes in clear.
func TestOpenOverTLSWritesTheSameBytes(t *testing.T) {
	wireOf := func(tlsOn bool) []byte {
		client, server := net.Pipe()
		var wire bytes.Buffer
		done := make(chan struct{})
		go func() { _, _ = io.Copy(&wire, server); close(done) }()
		p := &proxy{id: 7, conn: client, nodeTail: envoyNodeTail(516)}
		if tlsOn {
			p.tls = &tls.Config{}
		}
		if err := p.open(headerBlock("127.0.0.1:1", sotwPath, "https")); err != nil {
			t.Fatal(err)
		}
		_ = client.Close()
		<-done
		return wire.Bytes()
	}
	clear, overTLS := wireOf(false), wireOf(true)
	if len(clear) < 60_000 || !bytes.Equal(clear, overTLS) {
		t.Fatalf("in clear %d bytes, over TLS %d bytes, equal %v", len(clear), len(overTLS), bytes.Equal(clear, overTLS))
	}
}

func TestDataFramesAreViewsOfTheParts(t *testing.T) {
	tail := envoyNodeTail(516)
	parts := request{node: nodeHead("storm-3", "storm"), nodeTail: tail, typeURL: clusterType}.sotw()
	bufs := dataFrames(append([][]byte{grpcHeader(partsSize(parts))}, parts...), 5+partsSize(parts))
	views := 0
	for _, b := range bufs {
		if within(b, tail) {
			views++
		}
	}
	// The tail spans four 16 KiB frames, so it is at least four views of itself.
	if views < 4 {
		t.Fatalf("%d of the writev's buffers are views of the shared Node tail; it was copied", views)
	}
}

// responses is four encoded CDS responses, the second empty (a zero-length gRPC message).
func responses(t *testing.T) []byte {
	t.Helper()
	var stream []byte
	for i, names := range [][]string{{"c1", "c2"}, nil, {"c3"}, {"c4", "c5", "c6"}} {
		res := &discovery.DiscoveryResponse{}
		if names != nil {
			res = &discovery.DiscoveryResponse{TypeUrl: clusterType, Nonce: string(rune('1' + i))}
		}
		for _, n := range names {
			a, _ := anypb.New(&cluster.Cluster{Name: n})
			res.Resources = append(res.Resources, a)
		}
		b, _ := proto.Marshal(res)
		stream = append(append(stream, grpcHeader(len(b))...), b...)
	}
	return stream
}

// A proxy reading the frames `write` writes, over a pipe whose other side is kept: the proxy,
// read's error and what the proxy sent.
func readFrames(t *testing.T, write func(fw *http2.Framer), onSynced func()) (*proxy, error, []byte) {
	t.Helper()
	var in bytes.Buffer
	write(http2.NewFramer(&in, nil))
	client, server := net.Pipe()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, server); close(done) }()
	p := &proxy{conn: client, w: bufio.NewWriter(client), r: bufio.NewReader(&in)}
	p.fr = http2.NewFramer(p.w, p.r)
	err := p.read(onSynced)
	_ = p.w.Flush()
	_ = client.Close()
	<-done
	return p, err, out.Bytes()
}

// Responses split anywhere over DATA frames (inside the gRPC header too) are read whole, the
// empty one included, every DATA byte is given back as credit, and the first CDS is answered as
// Envoy would: its ACK, then EDS for the clusters it named.
func TestResponsesAreReadWhateverTheirSplit(t *testing.T) {
	stream := responses(t)
	for _, split := range []int{1, 2, 4, 5, 6, 7, 13, len(stream) / 2, len(stream)} {
		p, err, sent := readFrames(t, func(fw *http2.Framer) {
			for at := 0; at < len(stream); at += split {
				_ = fw.WriteData(1, false, stream[at:min(len(stream), at+split)])
			}
		}, func() {})
		if err != io.EOF {
			t.Fatalf("split %d: read ended with %v", split, err)
		}
		if p.responses != 4 || len(p.inbox) != 0 || len(p.asked) != 2 || p.unacked != len(stream) {
			t.Fatalf("split %d: %d responses, %d bytes held, asked %v, credit owed %d of %d", split, p.responses, len(p.inbox), p.asked, p.unacked, len(stream))
		}
		reqs := messagesOf(t, framesOf(t, sent, false))
		var ack, eds discovery.DiscoveryRequest
		if len(reqs) < 2 || proto.Unmarshal(reqs[0], &ack) != nil || proto.Unmarshal(reqs[1], &eds) != nil {
			t.Fatalf("split %d: %d requests sent", split, len(reqs))
		}
		if ack.GetTypeUrl() != clusterType || ack.GetResponseNonce() != "1" || eds.GetTypeUrl() != endpointType || len(eds.GetResourceNames()) != 2 || eds.GetResourceNames()[1] != "c2" {
			t.Fatalf("split %d: ACK %v, then %v", split, &ack, &eds)
		}
	}
}

func TestDataFramesOtherThanPlainOnesOfStreamOne(t *testing.T) {
	stream := responses(t)
	t.Run("padded: read without its padding", func(t *testing.T) {
		p, err, _ := readFrames(t, func(fw *http2.Framer) { _ = fw.WriteDataPadded(1, false, stream, make([]byte, 9)) }, func() {})
		if err != io.EOF || p.responses != 4 || p.unacked != len(stream)+10 {
			t.Fatalf("read ended with %v after %d responses, credit owed %d", err, p.responses, p.unacked)
		}
	})
	t.Run("END_STREAM without trailers: a reset", func(t *testing.T) {
		p, err, _ := readFrames(t, func(fw *http2.Framer) { _ = fw.WriteData(1, true, stream) }, func() {})
		if !errors.Is(err, errReset) || p.responses != 4 {
			t.Fatalf("read ended with %v after %d responses", err, p.responses)
		}
	})
	t.Run("DATA on a stream never opened: a failure, not a reset", func(t *testing.T) {
		p, err, _ := readFrames(t, func(fw *http2.Framer) { _ = fw.WriteData(3, false, stream) }, func() {})
		if err == nil || errors.Is(err, errReset) || classify(err) != failed || p.responses != 0 {
			t.Fatalf("read ended with %v after %d responses", err, p.responses)
		}
	})
}

// After CDS, the assignments: the proxy is synced once all arrive, and (SotW) ACKs them naming its
// whole subscription again, as Envoy does.
func TestAssignmentsSyncTheProxyAndTheirAckNamesTheSubscription(t *testing.T) {
	var stream []byte
	for _, res := range []*discovery.DiscoveryResponse{
		{TypeUrl: clusterType, Nonce: "1", Resources: []*anypb.Any{anyOf(t, &cluster.Cluster{Name: "c1"}), anyOf(t, &cluster.Cluster{Name: "c2"})}},
		{TypeUrl: endpointType, Nonce: "2", Resources: []*anypb.Any{anyOf(t, &endpoint.ClusterLoadAssignment{ClusterName: "c1"}), anyOf(t, &endpoint.ClusterLoadAssignment{ClusterName: "c2"})}},
	} {
		b, _ := proto.Marshal(res)
		stream = append(append(stream, grpcHeader(len(b))...), b...)
	}
	synced := 0
	_, err, sent := readFrames(t, func(fw *http2.Framer) { _ = fw.WriteData(1, false, stream) }, func() { synced++ })
	if err != io.EOF {
		t.Fatal(err)
	}
	reqs := messagesOf(t, framesOf(t, sent, false))
	var ack discovery.DiscoveryRequest
	if synced != 1 || len(reqs) != 3 || proto.Unmarshal(reqs[2], &ack) != nil {
		t.Fatalf("synced %d times, %d requests sent", synced, len(reqs))
	}
	if ack.GetTypeUrl() != endpointType || ack.GetResponseNonce() != "2" || len(ack.GetResourceNames()) != 2 {
		t.Fatalf("the assignments' ACK: %v", &ack)
	}
}
