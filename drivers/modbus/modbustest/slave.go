// Package modbustest is a Modbus RTU slave simulator for tests: one or
// several slaves (by address) on the device end of a ptytest line, answering
// functions 1 to 4 from their tables, and able to stay silent, corrupt the
// CRC or answer an exception. Its CRC is its own, written from the
// specification (poly 0xA001, init 0xFFFF, low byte first), so it checks the
// driver's rather than sharing it.
package modbustest

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
)

// Behaviour of a simulated slave.
type Behaviour int

const (
	Answer    Behaviour = iota
	Silent              // never answers: the master times out
	BadCRC              // answers with a corrupted CRC
	Exception           // answers exception 2, illegal data address
)

type tableKey struct {
	slave byte
	fn    byte // 1 coils, 2 discretes, 3 holding, 4 input
	addr  uint16
}

// Slaves is a Modbus RTU slave (several, by address) on the device end
// of a pty line: it reads request frames, checks their CRC and answers
// functions 1 to 4 from its tables.
type Slaves struct {
	line *ptytest.Line

	mu     sync.Mutex
	table  map[tableKey]uint16
	mode   map[byte]Behaviour
	frames map[byte]int // good request frames seen, by slave
	bad    int          // request frames with a bad CRC

	stop chan struct{}
	done chan struct{}
}

// New starts the slaves on the device end of line; they stop when the
// test ends.
func New(t testing.TB, line *ptytest.Line) *Slaves {
	s := &Slaves{
		line: line, table: map[tableKey]uint16{}, mode: map[byte]Behaviour{}, frames: map[byte]int{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.serve()
	t.Cleanup(func() {
		close(s.stop)
		line.Unplug() // unblocks a Read on the device end
		<-s.done
	})
	return s
}

// Set stores registers (or coils, 0/1) of a function's table from addr on.
func (s *Slaves) Set(slave, fn byte, addr uint16, vals ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range vals {
		s.table[tableKey{slave, fn, addr + uint16(i)}] = v
	}
}

// SetFloat32 stores the float32 bits at holding register addr in the given
// word order.
func (s *Slaves) SetFloat32(slave byte, addr uint16, bits uint32, lowFirst bool) {
	hi, lo := uint16(bits>>16), uint16(bits)
	if lowFirst {
		hi, lo = lo, hi
	}
	s.Set(slave, 3, addr, hi, lo)
}

// SetMode makes a slave answer, stay silent, corrupt its CRC or answer exceptions.
func (s *Slaves) SetMode(slave byte, b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode[slave] = b
}

// Seen is the number of good request frames addressed to slave.
func (s *Slaves) Seen(slave byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames[slave]
}

// BadFrames is the number of request frames with a bad CRC.
func (s *Slaves) BadFrames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

func (s *Slaves) serve() {
	defer close(s.done)
	var acc []byte
	buf := make([]byte, 64)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		dev := s.line.Device()
		if dev == nil { // unplugged
			acc = nil
			time.Sleep(2 * time.Millisecond)
			continue
		}
		n, err := dev.Read(buf)
		if err != nil {
			// EIO while the gateway has its end closed, or the file closed
			// by an unplug: look again shortly.
			acc = nil
			time.Sleep(2 * time.Millisecond)
			continue
		}
		acc = append(acc, buf[:n]...)
		// Every request the driver sends (functions 1-4) is 8 bytes.
		for len(acc) >= 8 {
			frame := acc[:8]
			acc = acc[8:]
			if crc16(frame[:6]) != uint16(frame[6])|uint16(frame[7])<<8 {
				s.mu.Lock()
				s.bad++
				s.mu.Unlock()
				acc = nil // resync
				break
			}
			if out := s.handle(frame); out != nil {
				_, _ = dev.Write(out)
			}
		}
	}
}

// handle answers one request frame, or returns nil for silence.
func (s *Slaves) handle(req []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	slave, fn := req[0], req[1]
	addr, count := binary.BigEndian.Uint16(req[2:]), binary.BigEndian.Uint16(req[4:])
	s.frames[slave]++
	var out []byte
	switch s.mode[slave] {
	case Silent:
		return nil
	case Exception:
		out = []byte{slave, fn | 0x80, 2}
	default:
		out = []byte{slave, fn, 0}
		switch fn {
		case 1, 2:
			bits := make([]byte, (count+7)/8)
			for i := range count {
				if s.table[tableKey{slave, fn, addr + i}] != 0 {
					bits[i/8] |= 1 << (i % 8)
				}
			}
			out = append(out, bits...)
		case 3, 4:
			for i := range count {
				out = binary.BigEndian.AppendUint16(out, s.table[tableKey{slave, fn, addr + i}])
			}
		default:
			out = []byte{slave, fn | 0x80, 1}
		}
		if out[1] == fn {
			out[2] = byte(len(out) - 3)
		}
	}
	crc := crc16(out)
	if s.mode[slave] == BadCRC {
		crc ^= 0x5555
	}
	return append(out, byte(crc), byte(crc>>8))
}

// crc16 is Modbus RTU's CRC: poly 0xA001 (reflected 0x8005), init 0xFFFF.
func crc16(b []byte) uint16 {
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
