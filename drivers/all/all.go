// Package all registers every sensor driver. The edgegw binary imports it
// for its side effect, so that any `driver:` a config names is available
// without the gateway naming a driver itself; a new driver package adds
// its blank import here and nowhere else.
package all

import (
	_ "github.com/edgegw/edgegw/drivers/gpio"   // driver: gpio
	_ "github.com/edgegw/edgegw/drivers/i2c"    // driver: i2c
	_ "github.com/edgegw/edgegw/drivers/modbus" // driver: modbus
	_ "github.com/edgegw/edgegw/drivers/mqtt"   // driver: mqtt
	_ "github.com/edgegw/edgegw/drivers/serial" // driver: serial
	_ "github.com/edgegw/edgegw/drivers/sim"    // driver: sim
)
