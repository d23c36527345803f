package i2c

import (
	"errors"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// bmx280 is a Bosch BME280 or BMP280, through periph's bmxx80 driver,
// which carries the datasheet's integer compensation formulas.
type bmx280 struct {
	bus      i2c.Bus
	addr     uint16
	humidity bool // configured as a bme280: the chip must have humidity
	dev      *bmxx80.Dev
}

// bmxOpts is the datasheet's "weather monitoring" setting: forced mode,
// 1x oversampling, no filter. A forced measurement then takes about 8 ms,
// which Sense waits for.
var bmxOpts = bmxx80.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x}

// setup reads the chip id and calibration and configures the chip.
func (b *bmx280) setup() error {
	b.dev = nil
	dev, err := bmxx80.NewI2C(b.bus, b.addr, &bmxOpts)
	if err != nil {
		return err
	}
	name := dev.String() // "BME280{...}": bmxx80 names the chip it detected
	if b.humidity && !strings.HasPrefix(name, "BME280") {
		return fmt.Errorf("configured as bme280 but the chip is a %s, without humidity", name[:strings.IndexByte(name, '{')])
	}
	if !strings.HasPrefix(name, "BME280") && !strings.HasPrefix(name, "BMP280") {
		return fmt.Errorf("not a BME280/BMP280: %s", name)
	}
	b.dev = dev
	return nil
}

// measure runs one forced measurement.
func (b *bmx280) measure() (map[string]float64, error) {
	if b.dev == nil {
		return nil, errors.New("bmx280 not set up")
	}
	var e physic.Env
	if err := b.dev.Sense(&e); err != nil {
		return nil, err
	}
	v := map[string]float64{
		"temperature": float64(e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius),
		"pressure":    float64(e.Pressure) / float64(physic.Pascal) / 100, // hPa
	}
	if b.humidity {
		v["humidity"] = float64(e.Humidity) / float64(physic.PercentRH)
	}
	return v, nil
}
