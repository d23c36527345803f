package modbus

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gomodbus "github.com/goburrow/modbus"

	"github.com/edgegw/edgegw/gateway/config"
)

// The worked example of the Modbus serial line guide: read 10 holding
// registers from 0 of slave 1.
func TestCRCKnownFrame(t *testing.T) {
	frame := []byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A}
	crc := CRC16(frame)
	if lo, hi := byte(crc), byte(crc>>8); lo != 0xC5 || hi != 0xCD {
		t.Fatalf("CRC = % X, want C5 CD", []byte{lo, hi})
	}
	if err := CheckFrame(append(frame, 0xC5, 0xCD)); err != nil {
		t.Errorf("CheckFrame of a good frame: %v", err)
	}
	if err := CheckFrame(append(frame, 0xCD, 0xC5)); err != ErrCRC {
		t.Errorf("CheckFrame with the CRC bytes swapped = %v, want ErrCRC", err)
	}
	// goburrow encodes the same frame.
	h := &gomodbus.RTUClientHandler{}
	h.SlaveId = 1
	adu, err := h.Encode(&gomodbus.ProtocolDataUnit{FunctionCode: 3, Data: []byte{0, 0, 0, 0x0A}})
	if err != nil || !slices.Equal(adu, []byte{1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCD}) {
		t.Errorf("goburrow encodes % X, %v", adu, err)
	}
}

func words(ws ...uint16) []byte {
	var b []byte
	for _, w := range ws {
		b = binary.BigEndian.AppendUint16(b, w)
	}
	return b
}

func TestDecodeRegisters(t *testing.T) {
	for _, tc := range []struct {
		typ, order string
		in         []byte
		want       float64
	}{
		{TypeInt16, "", words(0xFFFE), -2},
		{TypeInt16, "", words(0x7FFF), 32767},
		{TypeUint16, "", words(0xFFFE), 65534},
		{TypeInt32, HighFirst, words(0xFFFF, 0xFF85), -123},
		{TypeInt32, LowFirst, words(0xFF85, 0xFFFF), -123},
		{TypeUint32, HighFirst, words(0x0001, 0x0002), 65538},
		{TypeUint32, LowFirst, words(0x0002, 0x0001), 65538},
		{TypeFloat32, HighFirst, words(0x42F6, 0xE666), float64(float32(123.45))},
		{TypeFloat32, LowFirst, words(0xE666, 0x42F6), float64(float32(123.45))},
		{TypeFloat32, HighFirst, words(0xC2F6, 0xE666), float64(float32(-123.45))},
	} {
		got, err := DecodeRegisters(tc.in, tc.typ, tc.order)
		if err != nil || got != tc.want {
			t.Errorf("%s %s % X = %v, %v; want %v", tc.typ, tc.order, tc.in, got, err, tc.want)
		}
	}
	if _, err := DecodeRegisters(words(1), TypeFloat32, HighFirst); err == nil {
		t.Error("one register decoded as float32")
	}
	if _, err := DecodeRegisters(words(1, 2), TypeUint32, "middle"); err == nil {
		t.Error("unknown word order accepted")
	}
}

func TestScaled(t *testing.T) {
	if got := Scaled(235, 0.1, -5); math.Abs(got-18.5) > 1e-12 {
		t.Errorf("Scaled = %v", got)
	}
	if got := Scaled(7, 0, 1); got != 8 {
		t.Errorf("scale 0 (unset) = %v, want as scale 1", got)
	}
}

func TestDecodeBit(t *testing.T) {
	bits := []byte{0b0000_0101, 0b0000_0010}
	for i, want := range []float64{1, 0, 1, 0, 0, 0, 0, 0, 0, 1} {
		if got, err := DecodeBit(bits, i); err != nil || got != want {
			t.Errorf("bit %d = %v, %v", i, got, err)
		}
	}
	if _, err := DecodeBit(bits, 16); err == nil {
		t.Error("bit past the data")
	}
}

func TestResponseLength(t *testing.T) {
	req := []byte{1, 3, 0, 0, 0, 10, 0xC5, 0xCD}
	for _, tc := range []struct {
		got     []byte
		want    int
		wantErr bool
	}{
		{nil, 5, false},
		{[]byte{1, 3}, 5, false},
		{[]byte{1, 3, 20}, 25, false},
		{[]byte{1, 0x83, 2}, 5, false},
		{[]byte{2, 3, 20}, 0, true},
		{[]byte{1, 6, 0}, 0, true},
	} {
		n, err := ResponseLength(req, tc.got)
		if n != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ResponseLength(% X) = %d, %v", tc.got, n, err)
		}
	}
}

func TestCheck(t *testing.T) {
	problems := func(s config.Sensor) (config.Sensor, string) {
		var got []string
		Check(&s, func(field, format string, args ...any) { got = append(got, field) })
		return s, strings.Join(got, " ")
	}
	s, p := problems(config.Sensor{ID: "x", Port: "/dev/ttyUSB0", Slave: 3})
	if p != "" {
		t.Fatalf("minimal sensor: problems %s", p)
	}
	if s.Kind != KindHolding || s.Type != TypeUint16 || s.WordOrder != HighFirst || s.Scale != 1 ||
		s.Interval.D() != time.Second || s.Timeout.D() != 500*time.Millisecond {
		t.Errorf("defaults not filled in: %+v", s)
	}
	for _, tc := range []struct {
		s    config.Sensor
		want string
	}{
		{config.Sensor{Slave: 1}, "port"},
		{config.Sensor{Port: "p"}, "slave"},
		{config.Sensor{Port: "p", Slave: 248}, "slave"},
		{config.Sensor{Port: "p", Slave: 1, Kind: "register"}, "kind"},
		{config.Sensor{Port: "p", Slave: 1, Type: "float64"}, "type"},
		{config.Sensor{Port: "p", Slave: 1, WordOrder: "swapped"}, "word_order"},
		{config.Sensor{Port: "p", Slave: 1, Register: 65536}, "register"},
		{config.Sensor{Port: "p", Slave: 1, Register: -1}, "register"},
		{config.Sensor{Port: "p", Slave: 1, Register: 65535, Type: TypeFloat32}, "register"},
		{config.Sensor{Port: "p", Slave: 1, Kind: KindCoil, Type: TypeInt32}, "type"},
		{config.Sensor{Port: "p", Slave: 1, Baud: 12345}, "baud"},
		{config.Sensor{Port: "p", Slave: 1, Timeout: -1}, "timeout"},
	} {
		if _, p := problems(tc.s); p != tc.want {
			t.Errorf("%+v: problems %q, want %q", tc.s, p, tc.want)
		}
	}
}

func TestPack(t *testing.T) {
	s := func(slave, reg int, kind, typ string) config.Sensor {
		return config.Sensor{ID: "s", Port: "p", Slave: slave, Register: reg, Kind: kind, Type: typ}
	}
	ss := []config.Sensor{
		s(1, 100, "", TypeFloat32), s(1, 0, "", ""), s(1, 2, "", TypeInt32), // 0..3: one block
		s(1, 102, "", ""),        // 100..102, far from 0..3: a second
		s(1, 4, KindInput, ""),   // other kind
		s(2, 0, "", ""),          // other slave
		s(1, 3+1+maxGap, "", ""), // a gap of maxGap: still the first block
	}
	// Close enough to share a request, but longer than one request takes.
	for r := 200; r <= 325; r += 5 {
		ss = append(ss, s(1, r, "", ""))
	}
	for c := 1000; c <= 3000; c += 8 {
		ss = append(ss, s(1, c, KindCoil, ""))
	}
	ports, err := plan(ss)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range ports[0].blocks {
		got = append(got, strings.Join([]string{b.kind, itoa(int(b.slave)), itoa(b.start), itoa(b.count)}, ":"))
	}
	want := []string{"holding:1:0:13", "holding:1:100:3", "holding:1:200:121", "holding:1:325:1", "input:1:4:1", "holding:2:0:1", "coil:1:1000:1993", "coil:1:3000:1"}
	if !slices.Equal(got, want) {
		t.Errorf("blocks\n %v\nwant\n %v", got, want)
	}
}

var errNoMore = errors.New("replay: no more bytes")

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzDecode feeds arbitrary answers to the whole decoding path: frame
// length, CRC, goburrow's unpacking, and every type and word order. It must
// return errors, never panic.
func FuzzDecode(f *testing.F) {
	f.Add(byte(3), uint16(2), []byte{1, 3, 4, 0x42, 0xF6, 0xE6, 0x66, 0, 0})
	f.Add(byte(1), uint16(10), []byte{1, 1, 2, 0xFF, 0x03, 0, 0})
	f.Add(byte(4), uint16(1), []byte{1, 0x84, 2, 0, 0})
	f.Add(byte(3), uint16(125), []byte{1, 3, 0})
	f.Fuzz(func(t *testing.T, fn byte, count uint16, answer []byte) {
		fn = 1 + fn%4
		b := &block{slave: 1, start: 0, count: int(count%2000) + 1, kind: map[byte]string{1: KindCoil, 2: KindDiscrete, 3: KindHolding, 4: KindInput}[fn]}
		if !isBits(b.kind) {
			b.count = b.count%maxRegisters + 1
		}
		// Fix up the CRC half the time, so the fuzzer gets past it.
		if len(answer) >= 4 && answer[0]&1 == 0 {
			crc := CRC16(answer[:len(answer)-2])
			answer[len(answer)-2], answer[len(answer)-1] = byte(crc), byte(crc>>8)
		}
		pl := &poller{}
		pl.tr = transport{port: &replay{answer: answer}, timeout: time.Second}
		h := &gomodbus.RTUClientHandler{}
		h.SlaveId = 1
		data, err := pl.read(gomodbus.NewClient2(h, &pl.tr), b)
		if err != nil {
			return
		}
		for _, typ := range []string{TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeFloat32} {
			for _, order := range []string{HighFirst, LowFirst} {
				for _, reg := range []int{0, b.count - 1, b.count, b.count + 1} {
					_, _ = b.value(sensor{register: reg, typ: typ, order: order, scale: 1}, data)
				}
			}
		}
	})
}

// replay is a line whose device answers every request with one fixed
// byte string, then goes quiet.
type replay struct {
	answer []byte
	off    int
}

func (r *replay) Flush() error                { return nil }
func (r *replay) Write(b []byte) (int, error) { return len(b), nil }
func (r *replay) Read(b []byte) (int, error) {
	if r.off >= len(r.answer) {
		return 0, errNoMore
	}
	n := copy(b, r.answer[r.off:])
	r.off += n
	return n, nil
}

func TestCheckAll(t *testing.T) {
	a := &config.Sensor{ID: "a", Port: "/dev/ttyUSB1", Baud: 19200, Slave: 1}
	b := &config.Sensor{ID: "b", Port: "/dev/ttyUSB1", Baud: 19200, Parity: "even", Slave: 2}
	c := &config.Sensor{ID: "c", Port: "/dev/ttyUSB1", Baud: 19200, Parity: "none", Slave: 3}
	var got []int
	CheckAll([]*config.Sensor{a, b, c}, func(i int, field, format string, args ...any) { got = append(got, i) })
	if !slices.Equal(got, []int{1}) {
		t.Errorf("problems on sensors %v, want [1]", got)
	}
}
