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
	node    []byte // encoded core.v3.Node, only on the stream's first request
	typeURL string
	version string
	nonce   string
	names   []string
}

// node encodes core.v3.Node{id: 1, cluster: 2} followed by `tail` (envoyNodeTail).
func node(id, cluster string, tail []byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, id)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, cluster)
	return append(b, tail...)
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

// sotw encodes DiscoveryRequest{1 version_info, 2 node, 3 resource_names, 4 type_url, 5 response_nonce}.
func (r request) sotw() []byte {
	b := appendString(nil, 1, r.version)
	if r.node != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, r.node)
	}
	for _, n := range r.names {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	b = appendString(b, 4, r.typeURL)
	return appendString(b, 5, r.nonce)
}

// delta encodes DeltaDiscoveryRequest{1 node, 2 type_url, 3 resource_names_subscribe, 6 response_nonce}.
func (r request) delta() []byte {
	var b []byte
	if r.node != nil {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, r.node)
	}
	b = appendString(b, 2, r.typeURL)
	for _, n := range r.names {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	return appendString(b, 6, r.nonce)
}

// grpcFrame prefixes a message with gRPC's 5-byte header (uncompressed, big-endian length).
func grpcFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
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
