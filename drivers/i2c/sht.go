package i2c

import (
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// sht is a Sensirion SHT3x or SHT4x temperature and humidity sensor. Both
// answer a measurement with two words (temperature, humidity), each
// followed by its CRC-8.
type sht struct {
	conn  *i2c.Dev
	gen   int // 3 or 4
	sleep func(time.Duration)
}

// setup soft-resets the chip: an SHT3x left in periodic mode (by another
// program, or before our restart) ignores single-shot commands.
func (s *sht) setup() error {
	cmd, wait := []byte{0x30, 0xa2}, 2*time.Millisecond // SHT3x datasheet 4.9: soft reset, ≤1.5 ms
	if s.gen == 4 {
		cmd, wait = []byte{0x94}, time.Millisecond // SHT4x datasheet 4.5: soft reset, ≤1 ms
	}
	if err := s.conn.Tx(cmd, nil); err != nil {
		return err
	}
	s.sleep(wait)
	return nil
}

// measure starts one high-repeatability measurement, waits for it and
// reads it. A word whose CRC fails is left out, with errCRC.
func (s *sht) measure() (map[string]float64, error) {
	// SHT3x: single shot, high repeatability, no clock stretching, ≤15.5 ms.
	// SHT4x: high precision, ≤8.3 ms.
	cmd, wait := []byte{0x24, 0x00}, 16*time.Millisecond
	if s.gen == 4 {
		cmd, wait = []byte{0xfd}, 9*time.Millisecond
	}
	if err := s.conn.Tx(cmd, nil); err != nil {
		return nil, err
	}
	s.sleep(wait)
	var b [6]byte
	if err := s.conn.Tx(nil, b[:]); err != nil {
		return nil, err
	}
	v := map[string]float64{}
	var bad []string
	if crc8(b[0:2]) == b[2] {
		v["temperature"] = -45 + 175*float64(uint16(b[0])<<8|uint16(b[1]))/65535
	} else {
		bad = append(bad, "temperature")
	}
	if crc8(b[3:5]) == b[5] {
		raw := float64(uint16(b[3])<<8 | uint16(b[4]))
		if s.gen == 4 {
			// SHT4x datasheet 4.6: the formula reaches beyond 0..100 %RH;
			// values outside are cropped.
			v["humidity"] = min(max(-6+125*raw/65535, 0), 100)
		} else {
			v["humidity"] = 100 * raw / 65535
		}
	} else {
		bad = append(bad, "humidity")
	}
	if len(bad) > 0 {
		return v, fmt.Errorf("%w in %v word", errCRC, bad)
	}
	return v, nil
}

// crc8 is Sensirion's checksum: polynomial 0x31 (x^8+x^5+x^4+1), initial
// value 0xff, no reflection, no final xor. crc8(0xbeef) = 0x92.
func crc8(data []byte) byte {
	crc := byte(0xff)
	for _, b := range data {
		crc ^= b
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
