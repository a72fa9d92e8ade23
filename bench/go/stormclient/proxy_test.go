package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestDataFramesCarryThePartsInOrderWithinTheFrameSize(t *testing.T) {
	tail := envoyNodeTail(516)
	r := request{node: nodeHead("storm-3", "storm"), nodeTail: tail, typeURL: clusterType}
	parts := r.sotw()
	want := joined(parts)
	var wire bytes.Buffer
	bufs := dataFrames(append([][]byte{grpcHeader(len(want))}, parts...), 5+len(want))
	if _, err := bufs.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, &wire)
	var got []byte
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d := f.(*http2.DataFrame)
		if d.StreamID != 1 || len(d.Data()) > maxFrame {
			t.Fatalf("frame on stream %d of %d bytes", d.StreamID, len(d.Data()))
		}
		got = append(got, d.Data()...)
	}
	if int(binary.BigEndian.Uint32(got[1:5])) != len(want) || !bytes.Equal(got[5:], want) {
		t.Fatalf("frames carried %d bytes, want the %d-byte request after its header", len(got), len(want))
	}
	if len(tail) > 0 && &parts[1][0] != &tail[0] {
		t.Fatal("the shared Node tail was copied")
	}
}

// A response split anywhere over DATA frames is read whole, and every message in a frame is read.
func TestResponsesAreReadWhateverTheirSplit(t *testing.T) {
	var stream []byte
	for i, names := range [][]string{{"c1", "c2"}, {"c3"}, {"c4", "c5", "c6"}} {
		res := &discovery.DiscoveryResponse{TypeUrl: clusterType, Nonce: string(rune('1' + i))}
		for _, n := range names {
			a, _ := anypb.New(&cluster.Cluster{Name: n})
			res.Resources = append(res.Resources, a)
		}
		b, _ := proto.Marshal(res)
		stream = append(append(stream, grpcHeader(len(b))...), b...)
	}
	for _, split := range []int{1, 2, 4, 5, 6, 7, 13, len(stream) / 2, len(stream)} {
		var frames bytes.Buffer
		fw := http2.NewFramer(&frames, nil)
		for at := 0; at < len(stream); at += split {
			_ = fw.WriteData(1, false, stream[at:min(len(stream), at+split)])
		}
		_ = fw.WriteData(1, false, nil)
		client, server := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, server) }()
		p := &proxy{conn: client, w: bufio.NewWriter(client), r: bufio.NewReader(&frames)}
		p.fr = http2.NewFramer(p.w, p.r)
		if err := p.read(func() {}); err != io.EOF {
			t.Fatalf("split %d: read ended with %v", split, err)
		}
		if p.responses != 3 || len(p.inbox) != 0 || len(p.asked) != 2 {
			t.Fatalf("split %d: %d responses, %d bytes held, asked %v", split, p.responses, len(p.inbox), p.asked)
		}
		_ = client.Close()
	}
}
