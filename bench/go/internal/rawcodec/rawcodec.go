// Package rawcodec carries gRPC messages as raw bytes, so the benchmark's service needs no .proto:
// the request is ignored and the reply is the answering backend's index.
package rawcodec

import "fmt"

// Codec marshals *[]byte as is.
type Codec struct{}

// Name is the content-subtype; both ends force the codec, so it never travels as a negotiation.
func (Codec) Name() string { return "raw" }

// Marshal returns the bytes *v holds.
func (Codec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawcodec: cannot marshal %T", v)
	}
	return *b, nil
}

// Unmarshal copies data into *v.
func (Codec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawcodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// Method is the one unary method the fleet serves.
const Method = "/fulcrum.bench.Work/Do"
