package i2c

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
)

// Devices, the values of `device:`.
const (
	BME280   = "bme280"
	BMP280   = "bmp280"
	SHT3x    = "sht3x"
	SHT4x    = "sht4x"
	ADS1115  = "ads1115"
	INA219   = "ina219"
	Register = "register"
)

// Defaults of the i2c fields.
const (
	DefaultBus       = "1" // /dev/i2c-1, the header pins 3 (SDA) and 5 (SCL) of a Pi
	DefaultInterval  = config.Duration(5 * time.Second)
	DefaultGain      = 4.096 // ads1115: covers 0-3.3 V inputs
	DefaultShuntOhms = 0.1   // ina219: the common breakout boards' R100
	DefaultLength    = 2
	DefaultByteOrder = "big"
)

// model describes what Check knows of a device kind.
type model struct {
	channels  []string          // empty: no channel (register)
	units     map[string]string // default unit per channel
	addresses []int             // the addresses the chip can be strapped to
}

var models = map[string]model{
	BME280: {
		channels:  []string{"temperature", "pressure", "humidity"},
		units:     map[string]string{"temperature": "C", "pressure": "hPa", "humidity": "%RH"},
		addresses: []int{0x76, 0x77},
	},
	BMP280: {
		channels:  []string{"temperature", "pressure"},
		units:     map[string]string{"temperature": "C", "pressure": "hPa"},
		addresses: []int{0x76, 0x77},
	},
	SHT3x: {
		channels:  []string{"temperature", "humidity"},
		units:     map[string]string{"temperature": "C", "humidity": "%RH"},
		addresses: []int{0x44, 0x45},
	},
	SHT4x: {
		channels:  []string{"temperature", "humidity"},
		units:     map[string]string{"temperature": "C", "humidity": "%RH"},
		addresses: []int{0x44, 0x45, 0x46},
	},
	ADS1115: {
		channels:  []string{"a0", "a1", "a2", "a3"},
		units:     map[string]string{"a0": "V", "a1": "V", "a2": "V", "a3": "V"},
		addresses: []int{0x48, 0x49, 0x4a, 0x4b},
	},
	INA219: {
		channels:  []string{"current", "voltage", "power"},
		units:     map[string]string{"current": "A", "voltage": "V", "power": "W"},
		addresses: []int{0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f},
	},
	Register: {},
}

// adsGains maps an ADS1115 full-scale range in volts to its PGA bits.
var adsGains = map[float64]uint16{6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}

// registerTypes maps a generic register type to the lengths it fits.
var registerTypes = map[string][]int{
	"uint8": {1}, "int8": {1},
	"uint16": {2}, "int16": {2},
	"uint32": {4}, "int32": {4}, "float32": {4},
}

func deviceNames() string {
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Check validates an i2c sensor and fills in its defaults: bus "1",
// interval 5s, scale 1, the channel's unit (when scale and offset leave
// it the chip's), and per device gain, shunt_ohms, length, type and
// byte_order. Conflicts between sensors sharing one device (two device
// kinds at one address) are found by New, which sees all sensors.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	if s.Bus == "" {
		s.Bus = DefaultBus
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	} else if s.Interval < 0 {
		report("interval", "must be positive, not %v", s.Interval)
	}
	if s.Scale == 0 {
		s.Scale = 1
	}
	m, known := models[s.Device]
	switch {
	case s.Device == "":
		report("device", "required: one of %s", deviceNames())
		return
	case !known:
		report("device", "unknown device %q (known: %s)", s.Device, deviceNames())
		return
	}
	switch {
	case s.Address == 0:
		report("address", "required: the chip's 7-bit address, e.g. %#x", pick(m.addresses, 0x40))
	case s.Address < 0x03 || s.Address > 0x77:
		report("address", "%#x is not a 7-bit device address (0x03..0x77)", s.Address)
	case len(m.addresses) > 0 && !slices.Contains(m.addresses, s.Address):
		report("address", "a %s answers only at %s, not %#x", s.Device, hexList(m.addresses), s.Address)
	}
	if len(m.channels) > 0 {
		switch {
		case s.Channel == "":
			report("channel", "required for a %s: one of %s", s.Device, strings.Join(m.channels, ", "))
		case !slices.Contains(m.channels, s.Channel):
			report("channel", "a %s has no channel %q (it has %s)", s.Device, s.Channel, strings.Join(m.channels, ", "))
		case s.Unit == "" && s.Scale == 1 && s.Offset == 0:
			s.Unit = m.units[s.Channel]
		}
	} else if s.Channel != "" {
		report("channel", "a %s has no channels; use register, length and type", s.Device)
	}
	checkGain(s, report)
	checkShunt(s, report)
	checkRegister(s, report)
}

func checkGain(s *config.Sensor, report func(field, format string, args ...any)) {
	if s.Device != ADS1115 {
		if s.Gain != 0 {
			report("gain", "applies only to an ads1115")
		}
		return
	}
	if s.Gain == 0 {
		s.Gain = DefaultGain
	}
	if _, ok := adsGains[s.Gain]; !ok {
		report("gain", "%v is not an ads1115 full-scale range: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (volts)", s.Gain)
	}
}

func checkShunt(s *config.Sensor, report func(field, format string, args ...any)) {
	if s.Device != INA219 {
		if s.ShuntOhms != 0 {
			report("shunt_ohms", "applies only to an ina219")
		}
		return
	}
	if s.ShuntOhms == 0 {
		s.ShuntOhms = DefaultShuntOhms
	}
	if s.ShuntOhms < 0 {
		report("shunt_ohms", "must be positive, not %v", s.ShuntOhms)
	}
}

func checkRegister(s *config.Sensor, report func(field, format string, args ...any)) {
	if s.Device != Register {
		for field, set := range map[string]bool{"register": s.Register != 0, "length": s.Length != 0, "type": s.Type != "", "byte_order": s.ByteOrder != ""} {
			if set {
				report(field, "applies only to device: register")
			}
		}
		return
	}
	if s.Register < 0 || s.Register > 0xff {
		report("register", "%d is not an 8-bit register address (0..255)", s.Register)
	}
	if s.Length == 0 {
		s.Length = DefaultLength
		if lengths, ok := registerTypes[s.Type]; ok {
			s.Length = lengths[0] // type: float32 alone means 4 bytes
		}
	}
	if s.Length != 1 && s.Length != 2 && s.Length != 4 {
		report("length", "%d: must be 1, 2 or 4 bytes", s.Length)
		return
	}
	if s.Type == "" {
		s.Type = map[int]string{1: "uint8", 2: "uint16", 4: "uint32"}[s.Length]
	}
	if lengths, ok := registerTypes[s.Type]; !ok {
		report("type", "unknown type %q: int8, uint8, int16, uint16 (default), int32, uint32 or float32", s.Type)
	} else if !slices.Contains(lengths, s.Length) {
		report("type", "%s does not fit length %d", s.Type, s.Length)
	}
	if s.ByteOrder == "" {
		s.ByteOrder = DefaultByteOrder
	}
	if s.ByteOrder != "big" && s.ByteOrder != "little" {
		report("byte_order", "%q: must be big or little", s.ByteOrder)
	}
}

func pick(list []int, def int) int {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

func hexList(list []int) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = fmt.Sprintf("%#02x", a)
	}
	return strings.Join(parts, ", ")
}
