package all_test

import (
	"testing"

	"github.com/edgegw/edgegw/drivers"
	_ "github.com/edgegw/edgegw/drivers/all"
)

func TestRegistersDrivers(t *testing.T) {
	for _, name := range []string{"gpio", "i2c", "modbus", "mqtt", "serial", "sim"} {
		if _, ok := drivers.Lookup(name); !ok {
			t.Errorf("driver %q not registered (have %v)", name, drivers.Names())
		}
	}
}
