package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	sotwPath  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaPath = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	// Envoy's default HTTP/2 windows are 256 MiB; 16 MiB is far above one response here.
	window = 16 << 20
)

// outcome of one proxy: synced, or why not.
type outcome string

const (
	synced   outcome = "synced"
	refused  outcome = "refused" // the TCP connect was refused
	reset    outcome = "reset"   // connection reset or closed, RST_STREAM or GOAWAY before the sync
	status   outcome = "status"  // the server ended the call with a gRPC status
	timedOut outcome = "timeout" // not synced within -timeout
	failed   outcome = "error"   // anything else (connect timeout, bad frame)
)

// result is one proxy's story, in times since the storm began.
type result struct {
	outcome   outcome
	detail    string
	startedMs float64 // when it began to connect
	syncedMs  float64 // when it held CDS and every assignment it asked for
	// Where its time went: connected, TLS handshake done (= connected without TLS), first
	// request written, first response (CDS) read.
	connectedMs, handshakenMs, sentMs, firstMs float64
	resumed                                    bool // its TLS handshake resumed a session
}

// proxy is one simulated Envoy: its own TCP connection, HTTP/2 in clear (h2c, prior knowledge),
// one ADS stream (id 1): CDS wildcard, then EDS for the clusters CDS named, every response ACKed.
type proxy struct {
	id       int
	delta    bool
	source   net.IP
	t0       time.Time
	nodeTail []byte // what follows id and cluster in this proxy's Node (envoyNodeTail)
	idPrefix string // its node id is idPrefix-id ("storm" when unset)
	// tls: HTTP/2 over TLS with this config (its own session cache: one Envoy's), else h2c.
	tls *tls.Config

	conn      net.Conn
	w         *bufio.Writer
	r         *bufio.Reader
	fr        *http2.Framer
	inbox     []byte  // the gRPC message being received: its header in hdr, then a buffer of its length
	hdr       [5]byte // room for a message's header
	msgLen    int     // the received message's length, once its header is in
	eds       map[string]bool
	asked     []string // the clusters CDS named, whose assignments were asked for
	askedWire []byte   // asked, encoded once as the requests' names field
	// firstResponse runs when the first response is read (the result's timing).
	firstResponse func()
	unacked       int // DATA bytes not yet given back as flow-control credit
	responses     int // gRPC messages received
}

// headerBlock is the request's HPACK block: built once, valid on every new connection (each
// starts with an empty dynamic table). scheme: http, or https over TLS.
func headerBlock(target, path, scheme string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", scheme}, {":path", path}, {":authority", target},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "fulcrum-stormclient"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

func (p *proxy) since() float64 { return float64(time.Since(p.t0).Microseconds()) / 1000 }

// run connects, syncs and then holds the stream (answering pings and pushes) until ctx ends.
func (p *proxy) run(ctx context.Context, target string, headers []byte, syncedCh chan<- result) {
	r := result{startedMs: p.since()}
	report := func(o outcome, detail string) {
		r.outcome, r.detail = o, detail
		syncedCh <- r
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	if p.source != nil {
		d.LocalAddr = &net.TCPAddr{IP: p.source}
	}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		report(classify(err), "connect: "+err.Error())
		return
	}
	p.conn = conn
	r.connectedMs = p.since()
	defer conn.Close()
	go func() { <-ctx.Done(); _ = conn.Close() }()
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			report(classify(err), "tls: "+err.Error())
			return
		}
		p.conn = tc
		r.resumed = tc.ConnectionState().DidResume
	}
	r.handshakenMs = p.since()
	if err := p.open(headers); err != nil {
		report(classify(err), "open: "+err.Error())
		return
	}
	r.sentMs = p.since()
	p.firstResponse = func() { r.firstMs = p.since() }
	done := false
	err = p.read(func() {
		r.syncedMs = p.since()
		done = true
		report(synced, "")
	})
	if !done {
		if err == nil {
			err = fmt.Errorf("%w: stream ended", errReset)
		}
		var se *statusError
		if errors.As(err, &se) {
			report(status, err.Error())
		} else if ctx.Err() != nil {
			report(timedOut, fmt.Sprintf("after %d response(s), %d of %d assignments", p.responses, len(p.eds), len(p.asked)))
		} else {
			report(classify(err), fmt.Sprintf("after %d response(s): %v", p.responses, err))
		}
	}
}

// open writes the preface, settings, the stream's headers and its first request (CDS, with the node).
func (p *proxy) open(headers []byte) error {
	p.w = bufio.NewWriterSize(p.conn, 4096)
	p.r = bufio.NewReaderSize(p.conn, 16<<10)
	p.fr = http2.NewFramer(p.w, p.r)
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := p.w.WriteString(http2.ClientPreface); err != nil {
		return err
	}
	_ = p.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	_ = p.fr.WriteWindowUpdate(0, window-65535)
	_ = p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headers, EndHeaders: true})
	return p.send(request{node: nodeHead(fmt.Sprintf("%s-%d", p.prefix(), p.id), "storm"), nodeTail: p.nodeTail, typeURL: clusterType})
}

// maxFrame is HTTP/2's default SETTINGS_MAX_FRAME_SIZE (an Envoy's first request is ~61 KB: four frames).
const maxFrame = 16384

// send writes the request as DATA frames on stream 1 in one writev, its parts not copied: the
// 61 KB Node tail every proxy shares was copied four times per proxy (into the Node, the request,
// the gRPC frame and the framer's buffer), which made the client use nearly as much CPU as the
// server it measures (bench/RESULTS.md, client30).
func (p *proxy) send(r request) error {
	parts := r.sotw()
	if p.delta {
		parts = r.delta()
	}
	size := partsSize(parts)
	// What the framer buffered (SETTINGS, WINDOW_UPDATE, HEADERS, ACKs) goes first.
	if err := p.w.Flush(); err != nil {
		return err
	}
	bufs := dataFrames(append([][]byte{grpcHeader(size)}, parts...), 5+size)
	if p.tls != nil {
		// A TLS connection writes each buffer as a record of its own: one buffer, one record per 16 KB.
		_, err := p.conn.Write(bytes.Join(bufs, nil))
		return err
	}
	_, err := bufs.WriteTo(p.conn)
	return err
}

// partsSize is the parts' total length.
func partsSize(parts [][]byte) int {
	n := 0
	for _, part := range parts {
		n += len(part)
	}
	return n
}

// dataFrames lays `total` bytes of parts out as DATA frames of stream 1: each frame's 9-byte
// header, then slices of the parts (views, not copies).
func dataFrames(parts [][]byte, total int) net.Buffers {
	out := make(net.Buffers, 0, 2*len(parts)+2*(total/maxFrame+1))
	for left := total; left > 0; {
		n := min(left, maxFrame)
		out = append(out, []byte{byte(n >> 16), byte(n >> 8), byte(n), byte(http2.FrameData), 0, 0, 0, 0, 1})
		left -= n
		for n > 0 {
			take := min(n, len(parts[0]))
			out = append(out, parts[0][:take])
			parts[0] = parts[0][take:]
			if len(parts[0]) == 0 {
				parts = parts[1:]
			}
			n -= take
		}
	}
	return out
}

// control answers what HTTP/2 asks of a client: settings ACKs, ping ACKs, flow-control credit.
func (p *proxy) control(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		_ = p.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		_ = p.fr.WritePing(true, f.Data)
	default:
		return nil
	}
	return p.w.Flush()
}

// credit counts n DATA bytes received and gives them back as flow-control credit once half the window is used.
func (p *proxy) credit(n int) error {
	p.unacked += n
	if p.unacked < window/2 {
		return nil
	}
	_ = p.fr.WriteWindowUpdate(0, uint32(p.unacked))
	_ = p.fr.WriteWindowUpdate(1, uint32(p.unacked))
	p.unacked = 0
	return p.w.Flush()
}

type statusError struct{ code, message string }

func (e *statusError) Error() string { return fmt.Sprintf("grpc-status %s: %s", e.code, e.message) }

// read handles frames until the connection or stream ends; onSynced runs once, at the sync.
func (p *proxy) read(onSynced func()) error {
	for {
		fh, err := p.fr.ReadFrameHeader()
		if err != nil {
			return err
		}
		if fh.Type == http2.FrameData && fh.StreamID == 1 {
			if err := p.data(fh, onSynced); err != nil {
				return err
			}
			continue
		}
		f, err := p.fr.ReadFrameForHeader(fh)
		if err != nil {
			return err
		}
		if err := p.control(f); err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				e := &statusError{}
				for _, h := range f.Fields {
					switch h.Name {
					case "grpc-status":
						e.code = h.Value
					case "grpc-message":
						e.message = h.Value
					}
				}
				return e
			}
		case *http2.DataFrame:
			return fmt.Errorf("DATA on stream %d, which this client never opened", f.StreamID)
		case *http2.RSTStreamFrame:
			return fmt.Errorf("%w: RST_STREAM %v", errReset, f.ErrCode)
		case *http2.GoAwayFrame:
			return fmt.Errorf("%w: GOAWAY %v", errReset, f.ErrCode)
		}
	}
}

// maxMessage bounds a response's length prefix (the largest here is ~100 KB).
const maxMessage = 64 << 20

// data handles a DATA frame of stream 1 (its header read): the credit for all of it, then its
// message bytes, then its END_STREAM.
func (p *proxy) data(fh http2.FrameHeader, onSynced func()) error {
	if err := p.credit(int(fh.Length)); err != nil {
		return err
	}
	src, n, err := p.payload(fh)
	if err != nil {
		return err
	}
	if err := p.readData(src, n, onSynced); err != nil {
		return err
	}
	if fh.Flags.Has(http2.FlagDataEndStream) {
		return fmt.Errorf("%w: the server ended the stream without trailers", errReset)
	}
	return nil
}

// payload is where a DATA frame's message bytes are: read straight from the connection, or, for
// a padded frame (legal, though no server here pads), from the framer's copy without its padding.
func (p *proxy) payload(fh http2.FrameHeader) (io.Reader, int, error) {
	if !fh.Flags.Has(http2.FlagDataPadded) {
		return p.r, int(fh.Length), nil
	}
	f, err := p.fr.ReadFrameForHeader(fh)
	if err != nil {
		return nil, 0, err
	}
	d := f.(*http2.DataFrame).Data()
	return bytes.NewReader(d), len(d), nil
}

// readData reads n message bytes from src into the messages they belong to, handling each one
// it completes: a response's bytes are copied once, straight into a buffer of the message's
// length, not into the framer's buffer and then into a message's (bench/RESULTS.md, client30).
func (p *proxy) readData(src io.Reader, n int, onSynced func()) error {
	for n > 0 {
		k, err := p.fill(src, n)
		if err != nil {
			return err
		}
		n -= k
		if msg, ok := p.complete(); ok {
			if err := p.handle(msg, onSynced); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill reads up to n bytes of the message being received: its 5-byte header first (which sizes
// the buffer for the rest), then its body. Returns how many it read.
func (p *proxy) fill(src io.Reader, n int) (int, error) {
	if p.inbox == nil {
		p.inbox = p.hdr[:0]
	}
	want := 5
	if len(p.inbox) >= 5 {
		want += p.msgLen
	}
	at := len(p.inbox)
	k := min(want-at, n)
	p.inbox = p.inbox[:at+k]
	if _, err := io.ReadFull(src, p.inbox[at:]); err != nil {
		return 0, err
	}
	if at < 5 && len(p.inbox) == 5 {
		p.msgLen = int(binary.BigEndian.Uint32(p.inbox[1:5]))
		if p.msgLen > maxMessage {
			return k, fmt.Errorf("a response of %d bytes", p.msgLen)
		}
		p.inbox = append(make([]byte, 0, 5+p.msgLen), p.inbox...)
	}
	return k, nil
}

// complete is the message being received once it is whole; nothing is held after it.
func (p *proxy) complete() ([]byte, bool) {
	if len(p.inbox) < 5 || len(p.inbox) < 5+p.msgLen {
		return nil, false
	}
	msg := p.inbox[5:]
	p.inbox = nil
	return msg, true
}

// handle is one whole gRPC message.
func (p *proxy) handle(msg []byte, onSynced func()) error {
	m, err := parseResponse(msg, p.delta)
	if err != nil {
		return err
	}
	p.responses++
	if p.responses == 1 && p.firstResponse != nil {
		p.firstResponse()
	}
	return p.answer(m, onSynced)
}

// answer does what Envoy does with a response: on the first CDS, ask for the clusters'
// assignments; ACK everything (a SotW EDS ACK names the whole subscription again); count the
// assignments until all asked for have arrived.
func (p *proxy) answer(m response, onSynced func()) error {
	first := m.typeURL == clusterType && p.eds == nil
	if first {
		p.eds = make(map[string]bool, len(m.names))
		p.asked = m.names
		p.askedWire = encodeNames(m.names)
	}
	ack := request{typeURL: m.typeURL, version: m.version, nonce: m.nonce}
	if m.typeURL == endpointType && !p.delta {
		ack.names = p.askedWire
	}
	if err := p.send(ack); err != nil {
		return err
	}
	if first {
		if err := p.send(request{typeURL: endpointType, names: p.askedWire}); err != nil {
			return err
		}
	}
	before := len(p.eds)
	if m.typeURL == endpointType && p.eds != nil {
		for _, n := range m.names {
			p.eds[n] = true
		}
	}
	if p.eds != nil && len(p.eds) == len(p.asked) && (before < len(p.asked) || (first && len(p.asked) == 0)) {
		onSynced()
	}
	return nil
}

// errReset marks the server ending the stream or connection (RST_STREAM, GOAWAY, end of stream, EOF).
var errReset = errors.New("reset")

func classify(err error) outcome {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, errReset):
		return reset
	}
	return failed
}

func (p *proxy) prefix() string {
	if p.idPrefix == "" {
		return "storm"
	}
	return p.idPrefix
}
