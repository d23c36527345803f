package modbus

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
)

// Behaviours of a simulated slave.
type behaviour int

const (
	answer    behaviour = iota
	silent              // never answers: the master times out
	badCRC              // answers with a corrupted CRC
	exception           // answers exception 2, illegal data address
)

type tableKey struct {
	slave byte
	fn    byte // 1 coils, 2 discretes, 3 holding, 4 input
	addr  uint16
}

// slaveSim is a Modbus RTU slave (several, by address) on the device end
// of a pty line: it reads request frames, checks their CRC and answers
// functions 1 to 4 from its tables.
type slaveSim struct {
	line *ptytest.Line

	mu     sync.Mutex
	table  map[tableKey]uint16
	mode   map[byte]behaviour
	frames map[byte]int // good request frames seen, by slave
	bad    int          // request frames with a bad CRC

	stop chan struct{}
	done chan struct{}
}

func newSlaveSim(t *testing.T, line *ptytest.Line) *slaveSim {
	s := &slaveSim{
		line: line, table: map[tableKey]uint16{}, mode: map[byte]behaviour{}, frames: map[byte]int{},
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

func (s *slaveSim) set(slave, fn byte, addr uint16, vals ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range vals {
		s.table[tableKey{slave, fn, addr + uint16(i)}] = v
	}
}

// setFloat32 stores f at addr in the given word order.
func (s *slaveSim) setFloat32(slave byte, addr uint16, bits uint32, lowFirst bool) {
	hi, lo := uint16(bits>>16), uint16(bits)
	if lowFirst {
		hi, lo = lo, hi
	}
	s.set(slave, 3, addr, hi, lo)
}

func (s *slaveSim) setMode(slave byte, b behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode[slave] = b
}

func (s *slaveSim) seen(slave byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames[slave]
}

func (s *slaveSim) badFrames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

func (s *slaveSim) serve() {
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
			if CheckFrame(frame) != nil {
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
func (s *slaveSim) handle(req []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	slave, fn := req[0], req[1]
	addr, count := binary.BigEndian.Uint16(req[2:]), binary.BigEndian.Uint16(req[4:])
	s.frames[slave]++
	var out []byte
	switch s.mode[slave] {
	case silent:
		return nil
	case exception:
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
	crc := CRC16(out)
	if s.mode[slave] == badCRC {
		crc ^= 0x5555
	}
	return append(out, byte(crc), byte(crc>>8))
}
