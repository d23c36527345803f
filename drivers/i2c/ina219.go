package i2c

import (
	"periph.io/x/conn/v3/i2c"
)

// ina219 is a TI INA219 current and power monitor. It is read from its
// shunt and bus voltage registers, which need no calibration register:
// current is the shunt voltage over shunt_ohms, power that times the bus
// voltage. (periph's ina219 needs a maximum current to calibrate with and
// rounds through the chip's current register.)
type ina219 struct {
	conn      *i2c.Dev
	shuntOhms float64
}

// INA219 registers (datasheet 8.6).
const (
	inaConfig = 0x00
	inaShunt  = 0x01
	inaBus    = 0x02
	// inaDefaultConfig is the power-on configuration, written again at
	// setup in case something changed it: 32 V bus range, PGA /8 (±320 mV
	// shunt range), 12-bit bus and shunt ADC, shunt and bus continuous.
	inaDefaultConfig = 0x399f
)

func (c *ina219) setup() error {
	return c.conn.Tx([]byte{inaConfig, inaDefaultConfig >> 8, inaDefaultConfig & 0xff}, nil)
}

func (c *ina219) measure() (map[string]float64, error) {
	var sh, bus [2]byte
	if err := c.conn.Tx([]byte{inaShunt}, sh[:]); err != nil {
		return nil, err
	}
	if err := c.conn.Tx([]byte{inaBus}, bus[:]); err != nil {
		return nil, err
	}
	shuntV := float64(int16(uint16(sh[0])<<8|uint16(sh[1]))) * 10e-6 // 1 LSB = 10 µV
	busV := float64((uint16(bus[0])<<8|uint16(bus[1]))>>3) * 4e-3    // bits 15..3, 1 LSB = 4 mV
	current := shuntV / c.shuntOhms
	return map[string]float64{"current": current, "voltage": busV, "power": current * busV}, nil
}
