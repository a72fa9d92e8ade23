// Package dump stores the resources a server sent (raw DiscoveryResponse messages, each with a
// 4-byte big-endian length) so that the go-control-plane server can serve exactly what fulcrum
// served: identical content on both sides of the comparison.
package dump

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Write stores the messages in order.
func Write(path string, messages [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, m := range messages {
		var head [4]byte
		binary.BigEndian.PutUint32(head[:], uint32(len(m)))
		if _, err := f.Write(head[:]); err != nil {
			return err
		}
		if _, err := f.Write(m); err != nil {
			return err
		}
	}
	return f.Sync()
}

// Read returns the messages Write stored.
func Read(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, fmt.Errorf("%s: truncated length prefix", path)
		}
		n := int(binary.BigEndian.Uint32(data))
		if len(data) < 4+n {
			return nil, fmt.Errorf("%s: truncated message (%d bytes announced)", path, n)
		}
		out = append(out, data[4:4+n])
		data = data[4+n:]
	}
	if len(out) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return out, nil
}
