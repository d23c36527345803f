package i2c

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
)

func TestRegistered(t *testing.T) {
	f, ok := drivers.Lookup(Name)
	if !ok || f.Check == nil || f.New == nil {
		t.Fatal("driver i2c not registered with Check and New")
	}
}

func checkProblems(s *config.Sensor) []string {
	var ps []string
	Check(s, func(field, format string, args ...any) {
		ps = append(ps, field+": "+fmt.Sprintf(format, args...))
	})
	return ps
}

func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    config.Sensor
		want string // a problem starting with this
	}{
		{"no device", config.Sensor{Address: 0x76}, "device: required"},
		{"unknown device", config.Sensor{Device: "bme680", Address: 0x76}, `device: unknown device "bme680"`},
		{"missing address", config.Sensor{Device: BME280, Channel: "temperature"}, "address: required"},
		{"address not 7-bit", config.Sensor{Device: Register, Address: 0x90}, "address: 0x90 is not a 7-bit"},
		{"address the chip cannot have", config.Sensor{Device: BME280, Address: 0x44, Channel: "temperature"}, "address: a bme280 answers only at 0x76, 0x77"},
		{"missing channel", config.Sensor{Device: SHT3x, Address: 0x44}, "channel: required for a sht3x"},
		{"bad channel", config.Sensor{Device: BMP280, Address: 0x76, Channel: "humidity"}, `channel: a bmp280 has no channel "humidity"`},
		{"bad ads channel", config.Sensor{Device: ADS1115, Address: 0x48, Channel: "a4"}, `channel: a ads1115 has no channel "a4"`},
		{"bad gain", config.Sensor{Device: ADS1115, Address: 0x48, Channel: "a0", Gain: 5}, "gain: 5 is not an ads1115 full-scale range"},
		{"gain on another chip", config.Sensor{Device: SHT4x, Address: 0x44, Channel: "humidity", Gain: 2.048}, "gain: applies only to an ads1115"},
		{"negative shunt", config.Sensor{Device: INA219, Address: 0x40, Channel: "current", ShuntOhms: -1}, "shunt_ohms: must be positive"},
		{"channel on register", config.Sensor{Device: Register, Address: 0x20, Channel: "a0"}, "channel: a register has no channels"},
		{"register length", config.Sensor{Device: Register, Address: 0x20, Length: 3}, "length: 3: must be 1, 2 or 4"},
		{"register type", config.Sensor{Device: Register, Address: 0x20, Type: "float64"}, `type: unknown type "float64"`},
		{"type and length", config.Sensor{Device: Register, Address: 0x20, Length: 2, Type: "float32"}, "type: float32 does not fit length 2"},
		{"byte order", config.Sensor{Device: Register, Address: 0x20, ByteOrder: "middle"}, `byte_order: "middle": must be big or little`},
		{"register address", config.Sensor{Device: Register, Address: 0x20, Register: 300}, "register: 300 is not an 8-bit"},
		{"register on a chip", config.Sensor{Device: SHT3x, Address: 0x44, Channel: "humidity", Type: "int16"}, "type: applies only to device: register"},
		{"negative interval", config.Sensor{Device: SHT3x, Address: 0x44, Channel: "humidity", Interval: -1}, "interval: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := checkProblems(&tc.s)
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.HasPrefix(p, tc.want) }) {
				t.Errorf("problems %q, want one starting %q", ps, tc.want)
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    config.Sensor
		want config.Sensor
	}{
		{"bme280", config.Sensor{Device: BME280, Address: 0x76, Channel: "pressure"},
			config.Sensor{Device: BME280, Address: 0x76, Channel: "pressure", Bus: "1", Interval: config.Duration(5 * time.Second), Scale: 1, Unit: "hPa"}},
		{"ads1115 with engineering units", config.Sensor{Device: ADS1115, Address: 0x49, Channel: "a2", Scale: 2.5, Offset: -2.5},
			config.Sensor{Device: ADS1115, Address: 0x49, Channel: "a2", Bus: "1", Interval: config.Duration(5 * time.Second), Scale: 2.5, Offset: -2.5, Gain: 4.096}},
		{"ina219", config.Sensor{Device: INA219, Address: 0x41, Channel: "power", Bus: "0", Interval: config.Duration(time.Second)},
			config.Sensor{Device: INA219, Address: 0x41, Channel: "power", Bus: "0", Interval: config.Duration(time.Second), Scale: 1, Unit: "W", ShuntOhms: 0.1}},
		{"register", config.Sensor{Device: Register, Address: 0x20},
			config.Sensor{Device: Register, Address: 0x20, Bus: "1", Interval: config.Duration(5 * time.Second), Scale: 1, Length: 2, Type: "uint16", ByteOrder: "big"}},
		{"register float", config.Sensor{Device: Register, Address: 0x20, Type: "float32"},
			config.Sensor{Device: Register, Address: 0x20, Bus: "1", Interval: config.Duration(5 * time.Second), Scale: 1, Length: 4, Type: "float32", ByteOrder: "big"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ps := checkProblems(&tc.s); len(ps) > 0 {
				t.Fatal(ps)
			}
			if tc.s != tc.want {
				t.Errorf("got  %+v\nwant %+v", tc.s, tc.want)
			}
		})
	}
}
