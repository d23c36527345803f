package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Data types a sensor's registers hold.
const (
	TypeInt16   = "int16"
	TypeUint16  = "uint16"
	TypeInt32   = "int32"
	TypeUint32  = "uint32"
	TypeFloat32 = "float32"
)

// Word orders of the 32-bit types.
const (
	HighFirst = "high_first" // Modbus convention: the first register holds the high word
	LowFirst  = "low_first"  // devices that swap the words
)

// Errors of a response, tested with errors.Is.
var (
	// ErrTimeout is a request that got no complete answer within its timeout.
	ErrTimeout = errors.New("modbus: no answer within timeout")
	// ErrCRC is an answer whose CRC does not match its bytes.
	ErrCRC = errors.New("modbus: CRC mismatch")
	// ErrFrame is an answer that cannot be a reply to the request (wrong
	// slave, unknown function, a byte count that does not fit).
	ErrFrame = errors.New("modbus: malformed answer")
)

// width is how many registers (or coils) a value of type typ spans.
func width(typ string) int {
	switch typ {
	case TypeInt32, TypeUint32, TypeFloat32:
		return 2
	}
	return 1
}

// DecodeRegisters turns the registers of one value, as they came off the
// wire (big-endian bytes, two per register), into its raw number: words
// holds 1 register for 16-bit types and 2 for 32-bit ones. It reports an
// error, never panics, for a short slice or an unknown type or word order.
func DecodeRegisters(words []byte, typ, wordOrder string) (float64, error) {
	n := 2 * width(typ)
	if len(words) < n {
		return math.NaN(), fmt.Errorf("%w: %d bytes for %s, want %d", ErrFrame, len(words), typ, n)
	}
	if n == 4 {
		hi, lo := binary.BigEndian.Uint16(words), binary.BigEndian.Uint16(words[2:])
		switch wordOrder {
		case HighFirst, "":
		case LowFirst:
			hi, lo = lo, hi
		default:
			return math.NaN(), fmt.Errorf("unknown word order %q", wordOrder)
		}
		u := uint32(hi)<<16 | uint32(lo)
		switch typ {
		case TypeInt32:
			return float64(int32(u)), nil
		case TypeUint32:
			return float64(u), nil
		default:
			return float64(math.Float32frombits(u)), nil
		}
	}
	u := binary.BigEndian.Uint16(words)
	switch typ {
	case TypeInt16:
		return float64(int16(u)), nil
	case TypeUint16, "":
		return float64(u), nil
	}
	return math.NaN(), fmt.Errorf("unknown type %q", typ)
}

// DecodeBit returns coil or discrete input i (0-based from the request's
// first address) of a packed answer: LSB of the first byte is the first.
func DecodeBit(bits []byte, i int) (float64, error) {
	if i < 0 || i/8 >= len(bits) {
		return math.NaN(), fmt.Errorf("%w: bit %d of %d bytes", ErrFrame, i, len(bits))
	}
	return float64(bits[i/8] >> (i % 8) & 1), nil
}

// Scaled is raw*scale + offset, a scale of 0 counting as 1 (unset).
func Scaled(raw, scale, offset float64) float64 {
	if scale == 0 {
		scale = 1
	}
	return raw*scale + offset
}

// CRC16 is the Modbus RTU CRC (poly 0xA001 reflected, init 0xFFFF); on the
// wire its low byte goes first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// Minimum RTU answer: slave, function, one byte, CRC.
const rtuMinSize = 5

// ResponseLength says how many bytes the whole answer to req is, judging
// from the first bytes of it received so far (got): rtuMinSize until the
// header is in, then the exact length from the function and byte count.
// ErrFrame means got cannot start an answer to req. req is a read request
// (functions 1 to 4) as the driver builds them.
func ResponseLength(req, got []byte) (int, error) {
	if len(req) < 2 {
		return 0, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	if len(got) < 3 {
		return rtuMinSize, nil
	}
	if got[0] != req[0] {
		return 0, fmt.Errorf("%w: answer from slave %d to a request for %d", ErrFrame, got[0], req[0])
	}
	switch got[1] {
	case req[1] | 0x80:
		return rtuMinSize, nil // exception: slave, function|0x80, code, CRC
	case req[1]:
		switch req[1] {
		case 1, 2, 3, 4:
			return 3 + int(got[2]) + 2, nil
		}
	}
	return 0, fmt.Errorf("%w: function %#02x in answer to %#02x", ErrFrame, got[1], req[1])
}

// CheckFrame verifies a whole RTU frame's CRC.
func CheckFrame(frame []byte) error {
	if len(frame) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrFrame, len(frame))
	}
	n := len(frame) - 2
	if CRC16(frame[:n]) != uint16(frame[n])|uint16(frame[n+1])<<8 {
		return ErrCRC
	}
	return nil
}
