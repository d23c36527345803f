package i2c

import (
	"encoding/binary"
	"fmt"
	"math"

	"periph.io/x/conn/v3/i2c"
)

// registers reads raw registers of a chip not otherwise supported: for
// each, the register address is written and length bytes read back in one
// transaction (a repeated start), the usual register protocol.
type registers struct {
	conn  *i2c.Dev
	specs []regSpec
}

// regSpec is one generic register read.
type regSpec struct {
	reg    byte
	length int // 1, 2 or 4
	typ    string
	little bool
}

func (r regSpec) String() string {
	order := "big"
	if r.little {
		order = "little"
	}
	return fmt.Sprintf("%#02x/%d/%s/%s", r.reg, r.length, r.typ, order)
}

func (r *registers) setup() error { return nil }

func (r *registers) measure() (map[string]float64, error) {
	v := make(map[string]float64, len(r.specs))
	for _, sp := range r.specs {
		key := sp.String()
		if _, done := v[key]; done {
			continue
		}
		b := make([]byte, sp.length)
		if err := r.conn.Tx([]byte{sp.reg}, b); err != nil {
			return nil, err
		}
		v[key] = sp.decode(b)
	}
	return v, nil
}

// decode turns the register's bytes into a number of its type.
func (r regSpec) decode(b []byte) float64 {
	var order binary.ByteOrder = binary.BigEndian
	if r.little {
		order = binary.LittleEndian
	}
	switch r.typ {
	case "uint8":
		return float64(b[0])
	case "int8":
		return float64(int8(b[0]))
	case "uint16":
		return float64(order.Uint16(b))
	case "int16":
		return float64(int16(order.Uint16(b)))
	case "uint32":
		return float64(order.Uint32(b))
	case "int32":
		return float64(int32(order.Uint32(b)))
	case "float32":
		return float64(math.Float32frombits(order.Uint32(b)))
	}
	return math.NaN()
}
