// Package modbus reads Modbus RTU slaves over serial lines (PLCs, power
// meters, drives, temperature controllers), registered as driver "modbus".
//
// Sensors that name the same port share one poller goroutine, so requests
// on a line never overlap. Sensors of one slave, kind and interval whose
// registers lie close together (gaps of at most 8) are read in one request,
// up to 125 registers or 2000 coils.
//
// Framing (request encoding, CRC, exception decoding) is
// github.com/goburrow/modbus; the bytes move over a drivers/serialport
// port, which serialport.Keep reopens by path when a USB adapter is
// unplugged and plugged back.
//
// Failures, counted in edgegw_driver_errors_total{driver="modbus",kind}:
//   - timeout: no answer within `timeout` (default 500ms). The block's
//     sensors get a Bad reading (NaN) for that poll. After 3 timeouts in a
//     row the slave is dead and asked only every 5th interval; its
//     sensors still get one Bad reading per interval, and the other slaves
//     on the port lose at most one timeout per 5 intervals to it.
//   - crc: an answer whose CRC does not match; Bad readings.
//   - exception: the slave refused (illegal address, busy, ...); Bad
//     readings; logged with port, slave and register at most once a minute
//     per request.
//   - frame: an answer with a valid CRC that does not fit the request.
//   - port: the port vanished or cannot be opened (logged once per outage).
package modbus

import (
	"context"
	"sync"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
)

// Name is the `driver:` value of Modbus sensors.
const Name = "modbus"

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, CheckAll: CheckAll, New: New})
}

// Driver polls every Modbus port of the config.
type Driver struct {
	env   drivers.Env
	ports []*portPlan
}

// New plans the requests of all modbus sensors. It fails for a sensor that
// does not pass Check, or for sensors on one port that disagree on its
// line settings (baud, data bits, parity, stop bits).
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	ports, err := plan(sensors)
	if err != nil {
		return nil, err
	}
	env = env.WithDefaults()
	return &Driver{env: env, ports: ports}, nil
}

// Run polls every port, each in its own goroutine, until ctx is done; it
// returns once they have all stopped.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	var wg sync.WaitGroup
	for _, p := range d.ports {
		pl := newPoller(d.env, p)
		wg.Go(func() { _ = pl.run(ctx, sink) })
	}
	wg.Wait()
	return nil
}
