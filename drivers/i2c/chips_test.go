package i2c

import (
	"math"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/edgegw/edgegw/gateway/config"
)

// bmp280Setup is what bmxx80 sends to set up a BMP280 at 0x76 with the
// driver's options (1x oversampling, forced mode), the calibration being
// the worked example of the BMP280 datasheet (BST-BMP280-DS001, 3.12):
// dig_T1..3 = 27504, 26435, -1000; dig_P1..9 = 36477, -10685, 3024,
// 2855, 140, -7, 15500, -14600, 6000.
var bmp280Setup = []i2ctest.IO{
	{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x58}}, // chip id: BMP280
	{Addr: 0x76, W: []byte{0x88}, R: []byte{
		0x70, 0x6b, 0x43, 0x67, 0x18, 0xfc, 0x7d, 0x8e, 0x43, 0xd6, 0xd0, 0x0b, 0x27,
		0x0b, 0x8c, 0x00, 0xf9, 0xff, 0x8c, 0x3c, 0xf8, 0xc6, 0x70, 0x17, 0x00, 0x00}},
	// ctrl_meas sleep, config (standby 1s, no filter), ctrl_meas again.
	{Addr: 0x76, W: []byte{0xf4, 0x24, 0xf5, 0xa0, 0xf4, 0x24}},
}

// bmp280Measure is one forced measurement of the datasheet example's raw
// values, adc_P = 415148 and adc_T = 519888.
var bmp280Measure = []i2ctest.IO{
	{Addr: 0x76, W: []byte{0xf4, 0x25}},         // forced mode
	{Addr: 0x76, W: []byte{0xf3}, R: []byte{8}}, // status: measuring
	{Addr: 0x76, W: []byte{0xf3}, R: []byte{0}}, // status: done
	{Addr: 0x76, W: []byte{0xf7}, R: []byte{0x65, 0x5a, 0xc0, 0x7e, 0xed, 0x00}},
}

func TestBMP280DatasheetExample(t *testing.T) {
	bus := &i2ctest.Playback{Ops: slices.Concat(bmp280Setup, bmp280Measure, bmp280Measure), DontPanic: true}
	r := start(t, checked(t,
		config.Sensor{ID: "oil_temp", Bus: "1", Device: BMP280, Address: 0x76, Channel: "temperature"},
		config.Sensor{ID: "air_pressure", Bus: "1", Device: BMP280, Address: 0x76, Channel: "pressure"},
	), map[string]i2c.Bus{"1": bus})
	// Datasheet: T = 25.08 °C, p = 100653.27 Pa. bmxx80's 64-bit integer
	// formula lands 0.02 Pa below the datasheet's floating-point result.
	got := r.poll()
	want(t, got, "oil_temp", 25.08, 0.005, "C")
	want(t, got, "air_pressure", 1006.5327, 0.0003, "hPa")

	r.advance(4 * time.Second) // not yet due
	if got := r.poll(); len(got) != 0 {
		t.Fatalf("polled before the 5s interval: %v", got)
	}
	r.advance(time.Second) // due: the chip is measured again, not set up again
	got = r.poll()
	want(t, got, "oil_temp", 25.08, 0.005, "C")
	if got["oil_temp"].TS != r.clock.Now() {
		t.Errorf("ts %v, want the poll's time %v", got["oil_temp"].TS, r.clock.Now())
	}
	closePlayback(t, bus)
}

// TestBME280AllChannelsOnePoll feeds three sensor ids from one chip with
// one measurement. The traffic is a real BME280's, from periph's bmxx80
// tests; the humidity is checked against the datasheet's floating-point
// formula (BST-BME280-DS002, 8.1) computed here independently.
func TestBME280AllChannelsOnePoll(t *testing.T) {
	calib := []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}
	hcalib := []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}
	data := []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x77, W: []byte{0xd0}, R: []byte{0x60}}, // chip id: BME280
		{Addr: 0x77, W: []byte{0x88}, R: calib},
		{Addr: 0x77, W: []byte{0xe1}, R: hcalib},
		{Addr: 0x77, W: []byte{0xf4, 0x24, 0xf2, 0x01, 0xf5, 0xa0, 0xf4, 0x24}},
		{Addr: 0x77, W: []byte{0xf4, 0x25}},
		{Addr: 0x77, W: []byte{0xf3}, R: []byte{0}},
		{Addr: 0x77, W: []byte{0xf7}, R: data},
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "t", Device: BME280, Address: 0x77, Channel: "temperature"},
		config.Sensor{ID: "p", Device: BME280, Address: 0x77, Channel: "pressure"},
		config.Sensor{ID: "h", Device: BME280, Address: 0x77, Channel: "humidity"},
		config.Sensor{ID: "t_f", Device: BME280, Address: 0x77, Channel: "temperature", Scale: 1.8, Offset: 32, Unit: "F"},
	), map[string]i2c.Bus{"1": bus})
	got := r.poll()
	want(t, got, "t", 23.72, 0.005, "C")
	want(t, got, "p", 1009.42695, 0.0001, "hPa")
	want(t, got, "t_f", 23.72*1.8+32, 0.01, "F")
	// The same raw values through the datasheet's double formulas.
	tFine := bmeTFine(calib, int32(data[3])<<12|int32(data[4])<<4|int32(data[5])>>4)
	wantH := bmeHumidityFloat(calib, hcalib, tFine, int32(data[6])<<8|int32(data[7]))
	want(t, got, "h", wantH, 0.05, "%RH")
	closePlayback(t, bus)
}

// bmeTFine is t_fine of the datasheet's double temperature formula.
func bmeTFine(c []byte, adcT int32) float64 {
	t1 := float64(uint16(c[0]) | uint16(c[1])<<8)
	t2 := float64(int16(uint16(c[2]) | uint16(c[3])<<8))
	t3 := float64(int16(uint16(c[4]) | uint16(c[5])<<8))
	v1 := (float64(adcT)/16384 - t1/1024) * t2
	v2 := (float64(adcT)/131072 - t1/8192) * (float64(adcT)/131072 - t1/8192) * t3
	return v1 + v2
}

// bmeHumidityFloat is the datasheet's double humidity formula.
func bmeHumidityFloat(c, h []byte, tFine float64, adcH int32) float64 {
	h1 := float64(c[25])
	h2 := float64(int16(uint16(h[0]) | uint16(h[1])<<8))
	h3 := float64(h[2])
	h4 := float64(int16(h[3])<<4 | int16(h[4])&0xf)
	h5 := float64(int16(h[4])>>4 | int16(h[5])<<4)
	h6 := float64(int8(h[6]))
	x := tFine - 76800
	x = (float64(adcH) - (h4*64 + h5/16384*x)) * (h2 / 65536 * (1 + h6/67108864*x*(1+h3/67108864*x)))
	x *= 1 - h1*x/524288
	return math.Min(math.Max(x, 0), 100)
}

func TestBME280ConfiguredButBMP280Fitted(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: bmp280Setup}
	r := start(t, checked(t, config.Sensor{ID: "h", Device: BME280, Address: 0x76, Channel: "humidity"}), map[string]i2c.Bus{"1": bus})
	want(t, r.poll(), "h", math.NaN(), 0, "")
	if r.logs.count("without humidity") != 1 {
		t.Errorf("log does not say the chip lacks humidity: %s", r.logs)
	}
	closePlayback(t, bus)
}

// TestSHT3x reads an SHT3x answer (temperature word, CRC, humidity word,
// CRC), then answers with a spoiled CRC in each word. The CRCs were
// computed by crc8, itself checked against the datasheet's example.
func TestSHT3x(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x44, W: []byte{0x30, 0xa2}},                                   // soft reset
		{Addr: 0x44, W: []byte{0x24, 0x00}},                                   // single shot, high repeatability
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x93, 0x80, 0x00, 0xa2}},           // 0x6666, 0x8000
		{Addr: 0x44, W: []byte{0x24, 0x00}},                                   //
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x93, 0x80, 0x00, 0x00 /* bad */}}, // humidity CRC spoiled
		{Addr: 0x44, W: []byte{0x24, 0x00}},                                   //
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x92 /* bad */, 0x80, 0x00, 0xa2}}, // temperature CRC spoiled
		{Addr: 0x44, W: []byte{0x24, 0x00}},                                   //
		{Addr: 0x44, R: []byte{0x5e, 0xb8, 0x0d, 0x00, 0x00, 0x81}},           // 0x5eb8, 0x0000
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "cab_temp", Device: SHT3x, Address: 0x44, Channel: "temperature", Interval: config.Duration(time.Second)},
		config.Sensor{ID: "cab_rh", Device: SHT3x, Address: 0x44, Channel: "humidity", Interval: config.Duration(time.Second)},
	), map[string]i2c.Bus{"1": bus})
	// T = -45 + 175·St/65535, RH = 100·Srh/65535 (datasheet 4.13).
	got := r.poll()
	want(t, got, "cab_temp", -45+175*26214.0/65535, 1e-9, "C")
	want(t, got, "cab_rh", 100*32768.0/65535, 1e-9, "%RH")

	r.advance(time.Second)
	got = r.poll()
	want(t, got, "cab_temp", -45+175*26214.0/65535, 1e-9, "C")
	want(t, got, "cab_rh", math.NaN(), 0, "")

	r.advance(time.Second)
	got = r.poll()
	want(t, got, "cab_temp", math.NaN(), 0, "")
	want(t, got, "cab_rh", 100*32768.0/65535, 1e-9, "%RH")
	if n := r.errors(ErrKindCRC); n != 2 {
		t.Errorf("crc errors %v, want 2", n)
	}

	r.advance(time.Second) // a CRC error is noise on the wire: no new soft reset
	got = r.poll()
	want(t, got, "cab_temp", -45+175*24248.0/65535, 1e-9, "C")
	want(t, got, "cab_rh", 0, 1e-9, "%RH")
	if n := r.logs.count("i2c device failing"); n != 1 {
		t.Errorf("%d failure log lines for one outage, want 1", n)
	}
	if n := r.logs.count("answers again"); n != 1 {
		t.Errorf("%d recovery log lines, want 1", n)
	}
	if w := r.waited(); len(w) != 5 || w[0] != 2*time.Millisecond || w[1] != 16*time.Millisecond {
		t.Errorf("waits %v, want the reset's 2ms then 16ms per measurement", w)
	}
	closePlayback(t, bus)
}

func TestSHT4x(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x44, W: []byte{0x94}}, // soft reset
		{Addr: 0x44, W: []byte{0xfd}}, // measure, high precision
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x93, 0x80, 0x00, 0xa2}},
		{Addr: 0x44, W: []byte{0xfd}},
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x93, 0xff, 0xff, 0xac}}, // RH formula gives 119 %: cropped
	}}
	r := start(t, checked(t, config.Sensor{ID: "rh", Device: SHT4x, Address: 0x44, Channel: "humidity"}), map[string]i2c.Bus{"1": bus})
	// RH = -6 + 125·Srh/65535 (SHT4x datasheet 4.6).
	want(t, r.poll(), "rh", -6+125*32768.0/65535, 1e-9, "%RH")
	r.advance(5 * time.Second)
	want(t, r.poll(), "rh", 100, 0, "%RH")
	closePlayback(t, bus)
}

func TestCRC8DatasheetExample(t *testing.T) {
	// SHT3x datasheet 4.12 and SHT4x datasheet 4.4: CRC(0xBEEF) = 0x92.
	if got := crc8([]byte{0xbe, 0xef}); got != 0x92 {
		t.Fatalf("crc8(0xbeef) = %#x, want 0x92", got)
	}
}

// TestADS1115 reads a 4-20 mA transmitter over 250 Ω (1-5 V, 0-10 bar)
// on a0 and a 0-10 V signal through a 1:3 divider on a1, in one poll.
func TestADS1115(t *testing.T) {
	// Config words (datasheet 9.6.3): OS=1, MUX=100 (AIN0/GND) or 101,
	// PGA=000 (±6.144 V) or 001 (±4.096 V), MODE=1, DR=100, COMP_QUE=11.
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01, 0xc1, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x3e, 0x80}}, // 16000 · 187.5 µV = 3.000 V
		{Addr: 0x48, W: []byte{0x01, 0xd3, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x40, 0x00}}, // 16384 · 125 µV = 2.048 V
		{Addr: 0x48, W: []byte{0x01, 0xc1, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0xff, 0xff}}, // -1 LSB: a broken loop reads below 4 mA
		{Addr: 0x48, W: []byte{0x01, 0xd3, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x7f, 0xff}}, // full scale
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "hyd_bar", Device: ADS1115, Address: 0x48, Channel: "a0", Gain: 6.144, Scale: 2.5, Offset: -2.5, Unit: "bar"},
		config.Sensor{ID: "speed_ref", Device: ADS1115, Address: 0x48, Channel: "a1", Scale: 3, Unit: "V"},
	), map[string]i2c.Bus{"1": bus})
	got := r.poll()
	want(t, got, "hyd_bar", 5, 1e-9, "bar")
	want(t, got, "speed_ref", 6.144, 1e-9, "V")
	r.advance(5 * time.Second)
	got = r.poll()
	want(t, got, "hyd_bar", -0.0001875*2.5-2.5, 1e-9, "bar")
	want(t, got, "speed_ref", 3*4.096*32767/32768, 1e-9, "V")
	if w := r.waited(); len(w) != 4 || w[0] != 9*time.Millisecond {
		t.Errorf("waits %v, want 9ms per conversion", w)
	}
	closePlayback(t, bus)
}

func TestADSConfigWordMatchesDatasheetReset(t *testing.T) {
	// The datasheet's reset value 0x8583 is OS=1, MUX=000, PGA=010
	// (2.048 V), MODE=1, DR=100, COMP_QUE=11; ours differs only in MUX.
	if got := adsConfigWord(0, 2.048) &^ (7 << 12); got != 0x8583 {
		t.Fatalf("%#04x, want 0x8583 outside MUX", got)
	}
}

func TestINA219(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x00, 0x39, 0x9f}},            // config: the power-on default
		{Addr: 0x40, W: []byte{0x01}, R: []byte{0x7d, 0x00}}, // shunt: +320.00 mV (datasheet table 7, PGA /8)
		{Addr: 0x40, W: []byte{0x02}, R: []byte{0x5d, 0xc2}}, // bus: 3000 · 4 mV = 12.0 V, CNVR set
		{Addr: 0x40, W: []byte{0x01}, R: []byte{0x83, 0x00}}, // shunt: -320.00 mV
		{Addr: 0x40, W: []byte{0x02}, R: []byte{0x5d, 0xc0}},
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "motor_a", Device: INA219, Address: 0x40, Channel: "current"},
		config.Sensor{ID: "motor_v", Device: INA219, Address: 0x40, Channel: "voltage"},
		config.Sensor{ID: "motor_w", Device: INA219, Address: 0x40, Channel: "power", ShuntOhms: 0.1},
	), map[string]i2c.Bus{"1": bus})
	got := r.poll()
	want(t, got, "motor_a", 3.2, 1e-9, "A")
	want(t, got, "motor_v", 12, 1e-9, "V")
	want(t, got, "motor_w", 38.4, 1e-9, "W")
	r.advance(5 * time.Second)
	got = r.poll()
	want(t, got, "motor_a", -3.2, 1e-9, "A")
	want(t, got, "motor_w", -38.4, 1e-9, "W")
	closePlayback(t, bus)
}

func TestRegister(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x5c, W: []byte{0x10}, R: []byte{0xff, 0x38}},             // int16 big: -200
		{Addr: 0x5c, W: []byte{0x20}, R: []byte{0x00, 0x00, 0xc0, 0x3f}}, // float32 little: 1.5
		{Addr: 0x5c, W: []byte{0x30}, R: []byte{0x80}},                   // int8: -128
		{Addr: 0x5c, W: []byte{0x32}, R: []byte{0x01, 0x00, 0x00, 0x00}}, // uint32 little: 1
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "flow_temp", Device: Register, Address: 0x5c, Register: 0x10, Type: "int16", Scale: 0.1, Unit: "C"},
		config.Sensor{ID: "flow_rate", Device: Register, Address: 0x5c, Register: 0x20, Type: "float32", ByteOrder: "little"},
		config.Sensor{ID: "tilt", Device: Register, Address: 0x5c, Register: 0x30, Length: 1, Type: "int8", Offset: 128},
		config.Sensor{ID: "ticks", Device: Register, Address: 0x5c, Register: 0x32, Length: 4, ByteOrder: "little"},
	), map[string]i2c.Bus{"1": bus})
	got := r.poll()
	want(t, got, "flow_temp", -20, 1e-9, "C")
	want(t, got, "flow_rate", 1.5, 0, "")
	want(t, got, "tilt", 0, 0, "")
	want(t, got, "ticks", 1, 0, "")
	closePlayback(t, bus)
}

func TestRegisterDecode(t *testing.T) {
	for _, tc := range []struct {
		spec regSpec
		b    []byte
		want float64
	}{
		{regSpec{length: 1, typ: "uint8"}, []byte{0xff}, 255},
		{regSpec{length: 2, typ: "uint16"}, []byte{0x12, 0x34}, 0x1234},
		{regSpec{length: 2, typ: "uint16", little: true}, []byte{0x12, 0x34}, 0x3412},
		{regSpec{length: 2, typ: "int16", little: true}, []byte{0x00, 0x80}, -32768},
		{regSpec{length: 4, typ: "int32"}, []byte{0xff, 0xff, 0xff, 0xfe}, -2},
		{regSpec{length: 4, typ: "uint32"}, []byte{0xff, 0xff, 0xff, 0xfe}, 4294967294},
		{regSpec{length: 4, typ: "float32"}, []byte{0xc1, 0x48, 0x00, 0x00}, -12.5},
	} {
		if got := tc.spec.decode(tc.b); got != tc.want {
			t.Errorf("%v % x: %v, want %v", tc.spec, tc.b, got, tc.want)
		}
	}
}

// TestRegisterFloatNaNIsBad: a float register holding NaN is no number.
func TestRegisterFloatNaNIsBad(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x5c, W: []byte{0x20}, R: []byte{0x7f, 0xc0, 0x00, 0x00}},
	}}
	r := start(t, checked(t, config.Sensor{ID: "x", Device: Register, Address: 0x5c, Register: 0x20, Type: "float32"}), map[string]i2c.Bus{"1": bus})
	want(t, r.poll(), "x", math.NaN(), 0, "")
	closePlayback(t, bus)
}
