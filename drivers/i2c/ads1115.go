package i2c

import (
	"time"

	"periph.io/x/conn/v3/i2c"
)

// ads1115 is a TI ADS1115 16-bit ADC read single-ended, one single-shot
// conversion per input per poll. periph's ads1x15 runs its own goroutine
// and timing per pin; one write, one wait and one read is all a poll needs.
type ads1115 struct {
	conn   *i2c.Dev
	inputs []adsInput
	sleep  func(time.Duration)
}

type adsInput struct {
	key string
	mux uint16  // 0..3: AINx against GND
	fsr float64 // full-scale range in volts
}

// ADS1115 registers (datasheet 9.6).
const (
	adsConversion = 0x00
	adsConfig     = 0x01
	// adsWait is one conversion at 128 SPS (7.8 ms) plus the oscillator's
	// 10 % tolerance.
	adsWait = 9 * time.Millisecond
)

// adsConfigWord is the config register for a single-shot conversion of
// input mux at fsr: OS=1 (start), MUX=1xx (AINx vs GND), PGA, MODE=1
// (single shot), DR=100 (128 SPS), comparator off (COMP_QUE=11).
func adsConfigWord(mux uint16, fsr float64) uint16 {
	return 1<<15 | (4+mux)<<12 | adsGains[fsr]<<9 | 1<<8 | 4<<5 | 3
}

// setup has nothing to do: every conversion writes the whole config.
func (a *ads1115) setup() error { return nil }

// measure converts each input in turn and returns volts.
func (a *ads1115) measure() (map[string]float64, error) {
	v := make(map[string]float64, len(a.inputs))
	for _, in := range a.inputs {
		if _, done := v[in.key]; done {
			continue
		}
		cfg := adsConfigWord(in.mux, in.fsr)
		if err := a.conn.Tx([]byte{adsConfig, byte(cfg >> 8), byte(cfg)}, nil); err != nil {
			return nil, err
		}
		a.sleep(adsWait)
		var b [2]byte
		if err := a.conn.Tx([]byte{adsConversion}, b[:]); err != nil {
			return nil, err
		}
		raw := int16(uint16(b[0])<<8 | uint16(b[1]))
		v[in.key] = float64(raw) * in.fsr / 32768 // datasheet 9.3.3: 1 LSB = FSR/2^15
	}
	return v, nil
}
