package main

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	endpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// request is what an Envoy sends on ADS, encoded by hand: a proxy here costs a few appends,
// not a generated message, so the client stays cheap next to the server it measures.
type request struct {
	node     []byte // encoded core.v3.Node's own fields (nodeHead), only on the stream's first request
	nodeTail []byte // what follows them (envoyNodeTail): shared by every proxy, never copied
	typeURL  string
	version  string
	nonce    string
	names    []byte // resource names, encoded as field 3 (encodeNames): the same field in SotW and Delta
}

// nodeHead encodes core.v3.Node{id: 1, cluster: 2}; the Node is these bytes followed by a tail (envoyNodeTail).
func nodeHead(id, cluster string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, id)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, cluster)
}

// encodeNames encodes names as repeated field 3 (DiscoveryRequest.resource_names,
// DeltaDiscoveryRequest.resource_names_subscribe).
func encodeNames(names []string) []byte {
	var b []byte
	for _, n := range names {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	return b
}

// envoyNodeTail encodes what an Envoy 1.40 adds to its Node: user_agent_name 6, its build version
// 8 {version 1 {major 1, minor 2, patch 3}}, and `extensions` entries of field 9 {name 1,
// category 2, type_urls 6} of ~118 bytes each, as Envoy's are (1.40 lists 516: a 61 KB Node):
// the same bytes for every proxy.
func envoyNodeTail(extensions int) []byte {
	if extensions == 0 {
		return nil
	}
	b := appendString(nil, 6, "envoy")
	semver := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	semver = protowire.AppendVarint(protowire.AppendTag(semver, 2, protowire.VarintType), 40)
	build := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), semver)
	b = protowire.AppendBytes(protowire.AppendTag(b, 8, protowire.BytesType), build)
	for i := 0; i < extensions; i++ {
		e := appendString(nil, 1, fmt.Sprintf("envoy.filters.http.extension_number_%d", i))
		e = appendString(e, 2, "envoy.filters.http")
		e = appendString(e, 6, fmt.Sprintf("type.googleapis.com/envoy.ext.filters.http.v3.Ext%d", i))
		b = protowire.AppendBytes(protowire.AppendTag(b, 9, protowire.BytesType), e)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendNode appends field `num` holding the Node; returns the message so far and the parts to
// send in order: the Node's shared tail is a part of its own, not copied into every request.
func (r request) appendNode(b []byte, num protowire.Number) ([]byte, [][]byte) {
	if r.node == nil {
		return b, nil
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(r.node)+len(r.nodeTail)))
	b = append(b, r.node...)
	if len(r.nodeTail) == 0 {
		return b, nil
	}
	return nil, [][]byte{b, r.nodeTail}
}

// sotw encodes DiscoveryRequest{1 version_info, 2 node, 3 resource_names, 4 type_url, 5 response_nonce}
// as parts, in order.
func (r request) sotw() [][]byte {
	b, parts := r.appendNode(appendString(nil, 1, r.version), 2)
	b = append(b, r.names...)
	b = appendString(b, 4, r.typeURL)
	return append(parts, appendString(b, 5, r.nonce))
}

// delta encodes DeltaDiscoveryRequest{1 node, 2 type_url, 3 resource_names_subscribe, 6 response_nonce}
// as parts, in order.
func (r request) delta() [][]byte {
	b, parts := r.appendNode(nil, 1)
	b = appendString(b, 2, r.typeURL)
	b = append(b, r.names...)
	return append(parts, appendString(b, 6, r.nonce))
}

// grpcHeader is gRPC's 5-byte message header (uncompressed, big-endian length).
func grpcHeader(length int) []byte {
	h := make([]byte, 5)
	binary.BigEndian.PutUint32(h[1:5], uint32(length))
	return h
}

// response is what a proxy needs from one (Delta)DiscoveryResponse: its type, version, nonce
// and the names of the resources it carries (Cluster.name and ClusterLoadAssignment.cluster_name
// are both field 1 of the resource).
type response struct {
	version string
	typeURL string
	nonce   string
	names   []string
}

// parseResponse walks DiscoveryResponse (1 version_info, 2 resources: Any{2 value}, 4 type_url,
// 5 nonce) or DeltaDiscoveryResponse (1 system_version_info, 2 resources: Resource{2 Any}, 4, 5).
func parseResponse(b []byte, delta bool) (response, error) {
	var r response
	err := eachBytes(b, func(num protowire.Number, v []byte) bool {
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			if delta {
				v = first(v, 2)
			}
			r.names = append(r.names, string(first(first(v, 2), 1)))
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		}
		return true
	})
	return r, err
}

// eachBytes calls fn with every length-delimited field of a message, in order, until it returns false.
func eachBytes(b []byte, fn func(num protowire.Number, v []byte) bool) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if typ == protowire.BytesType {
			_, _, tagLen := protowire.ConsumeTag(b)
			v, _ := protowire.ConsumeBytes(b[tagLen:])
			if !fn(num, v) {
				return nil
			}
		}
		b = b[n:]
	}
	return nil
}

// first is field num of a message, the first occurrence (nil when absent or malformed).
func first(b []byte, num protowire.Number) []byte {
	var out []byte
	_ = eachBytes(b, func(n protowire.Number, v []byte) bool {
		if n != num {
			return true
		}
		out = v
		return false
	})
	return out
}
