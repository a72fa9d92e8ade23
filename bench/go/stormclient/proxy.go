package main

import (
	"bufio"
	"bytes"
	"context"
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
}

// proxy is one simulated Envoy: its own TCP connection, HTTP/2 in clear (h2c, prior knowledge),
// one ADS stream (id 1): CDS wildcard, then EDS for the clusters CDS named, every response ACKed.
type proxy struct {
	id       int
	delta    bool
	source   net.IP
	t0       time.Time
	nodeTail []byte // what follows id and cluster in this proxy's Node (envoyNodeTail)

	conn      net.Conn
	w         *bufio.Writer
	fr        *http2.Framer
	inbox     []byte // gRPC bytes received on the stream, not yet a whole message
	eds       map[string]bool
	asked     []string // the clusters CDS named, whose assignments were asked for
	unacked   int      // DATA bytes not yet given back as flow-control credit
	responses int      // gRPC messages received
}

// headerBlock is the request's HPACK block: built once, valid on every new connection (each
// starts with an empty dynamic table).
func headerBlock(target, path string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", target},
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
	defer conn.Close()
	go func() { <-ctx.Done(); _ = conn.Close() }()
	if err := p.open(headers); err != nil {
		report(classify(err), "open: "+err.Error())
		return
	}
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
			report(timedOut, "")
		} else {
			report(classify(err), fmt.Sprintf("after %d response(s): %v", p.responses, err))
		}
	}
}

// open writes the preface, settings, the stream's headers and its first request (CDS, with the node).
func (p *proxy) open(headers []byte) error {
	p.w = bufio.NewWriterSize(p.conn, 4096)
	p.fr = http2.NewFramer(p.w, bufio.NewReaderSize(p.conn, 16<<10))
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := p.w.WriteString(http2.ClientPreface); err != nil {
		return err
	}
	_ = p.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	_ = p.fr.WriteWindowUpdate(0, window-65535)
	_ = p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headers, EndHeaders: true})
	n := node(fmt.Sprintf("storm-%d", p.id), "storm", p.nodeTail)
	return p.send(request{node: n, typeURL: clusterType})
}

func (p *proxy) send(r request) error {
	msg := r.sotw()
	if p.delta {
		msg = r.delta()
	}
	// In frames of at most HTTP/2's default SETTINGS_MAX_FRAME_SIZE (an Envoy's first request is ~61 KB).
	for frame := grpcFrame(msg); len(frame) > 0; {
		n := min(len(frame), 16384)
		if err := p.fr.WriteData(1, false, frame[:n]); err != nil {
			return err
		}
		frame = frame[n:]
	}
	return p.w.Flush()
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
	case *http2.DataFrame:
		p.unacked += int(f.Length)
		if p.unacked < window/2 {
			return nil
		}
		_ = p.fr.WriteWindowUpdate(0, uint32(p.unacked))
		_ = p.fr.WriteWindowUpdate(1, uint32(p.unacked))
		p.unacked = 0
	default:
		return nil
	}
	return p.w.Flush()
}

type statusError struct{ code, message string }

func (e *statusError) Error() string { return fmt.Sprintf("grpc-status %s: %s", e.code, e.message) }

// read handles frames until the connection or stream ends; onSynced runs once, at the sync.
func (p *proxy) read(onSynced func()) error {
	for {
		f, err := p.fr.ReadFrame()
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
			p.inbox = append(p.inbox, f.Data()...)
			if err := p.drain(onSynced); err != nil {
				return err
			}
			if f.StreamEnded() {
				return fmt.Errorf("%w: the server ended the stream without trailers", errReset)
			}
		case *http2.RSTStreamFrame:
			return fmt.Errorf("%w: RST_STREAM %v", errReset, f.ErrCode)
		case *http2.GoAwayFrame:
			return fmt.Errorf("%w: GOAWAY %v", errReset, f.ErrCode)
		}
	}
}

// drain handles every whole gRPC message in the inbox.
func (p *proxy) drain(onSynced func()) error {
	for len(p.inbox) >= 5 {
		size := int(binary.BigEndian.Uint32(p.inbox[1:5]))
		if len(p.inbox) < 5+size {
			return nil
		}
		m, err := parseResponse(p.inbox[5:5+size], p.delta)
		if err != nil {
			return err
		}
		p.inbox = p.inbox[5+size:]
		p.responses++
		if err := p.answer(m, onSynced); err != nil {
			return err
		}
	}
	if len(p.inbox) == 0 {
		p.inbox = nil
	}
	return nil
}

// answer does what Envoy does with a response: on the first CDS, ask for the clusters'
// assignments; ACK everything (a SotW EDS ACK names the whole subscription again); count the
// assignments until all asked for have arrived.
func (p *proxy) answer(m response, onSynced func()) error {
	first := m.typeURL == clusterType && p.eds == nil
	if first {
		p.eds = make(map[string]bool, len(m.names))
		p.asked = m.names
	}
	ack := request{typeURL: m.typeURL, version: m.version, nonce: m.nonce}
	if m.typeURL == endpointType && !p.delta {
		ack.names = p.asked
	}
	if err := p.send(ack); err != nil {
		return err
	}
	if first {
		if err := p.send(request{typeURL: endpointType, names: p.asked}); err != nil {
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
