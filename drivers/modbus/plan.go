package modbus

import (
	"fmt"
	"slices"
	"time"

	"github.com/edgegw/edgegw/drivers/serialport"
	"github.com/edgegw/edgegw/gateway/config"
)

// Kinds of Modbus data, with the function that reads them.
const (
	KindHolding  = "holding"  // function 3
	KindInput    = "input"    // function 4
	KindCoil     = "coil"     // function 1
	KindDiscrete = "discrete" // function 2
)

// Defaults of the modbus fields.
const (
	DefaultInterval = config.Duration(time.Second)
	DefaultTimeout  = config.Duration(500 * time.Millisecond)
)

// Limits of one read request (Modbus application protocol v1.1b3, 6.1-6.4).
const (
	maxRegisters = 125
	maxBits      = 2000
	// maxGap is how many unused registers (or coils) between two sensors
	// are still read along with them: a few wasted words cost far less
	// than another request's round trip and turnaround.
	maxGap = 8
)

func isBits(kind string) bool { return kind == KindCoil || kind == KindDiscrete }

// Check validates a modbus sensor and fills in its defaults. That sensors
// sharing a port agree on its settings is checked by New, which sees them
// all.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	serialport.Check(lineOf(s), report)
	switch {
	case s.Slave == 0:
		report("slave", "required: the slave address, 1..247")
	case s.Slave < 1 || s.Slave > 247:
		report("slave", "%d is not a slave address (1..247)", s.Slave)
	}
	if s.Kind == "" {
		s.Kind = KindHolding
	}
	switch s.Kind {
	case KindHolding, KindInput, KindCoil, KindDiscrete:
	default:
		report("kind", "%q is not holding, input, coil or discrete", s.Kind)
	}
	if s.Type == "" {
		s.Type = TypeUint16
	}
	switch s.Type {
	case TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeFloat32:
		if width(s.Type) == 2 && isBits(s.Kind) {
			report("type", "%s needs two registers; a %s is one bit (use int16 or uint16, or leave type out)", s.Type, s.Kind)
		}
	default:
		report("type", "%q is not int16, uint16, int32, uint32 or float32", s.Type)
	}
	if s.WordOrder == "" {
		s.WordOrder = HighFirst
	}
	if s.WordOrder != HighFirst && s.WordOrder != LowFirst {
		report("word_order", "%q is not high_first or low_first", s.WordOrder)
	}
	if last := s.Register + width(s.Type) - 1; s.Register < 0 || last > 0xFFFF {
		report("register", "%d is out of range: a %s there ends at %d, past 65535", s.Register, s.Type, last)
	}
	if s.Scale == 0 {
		s.Scale = 1
	}
	if s.Interval < 0 {
		report("interval", "must be positive")
	} else if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout < 0 {
		report("timeout", "must be positive")
	} else if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
}

// lineOf is the sensor's port settings, defaults filled in so that two
// sensors that differ only in writing a default out compare equal.
func lineOf(s *config.Sensor) serialport.Config {
	c := serialport.Config{Path: s.Port, Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits}
	if c.Baud == 0 {
		c.Baud = 9600
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.Parity == "" {
		c.Parity = "none"
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	return c
}

// sensor is one configured value, checked.
type sensor struct {
	id, unit      string
	register      int
	typ, order    string
	scale, offset float64
}

// block is one read request, polled every interval: a run of registers
// (or coils) of one slave and kind that covers one or more sensors.
type block struct {
	slave    byte
	kind     string
	start    int // first register
	count    int // registers or coils
	interval time.Duration
	timeout  time.Duration
	sensors  []sensor

	due  time.Time // next poll
	skip int       // polls left to skip while the slave is dead
}

// portPlan is everything polled on one serial line.
type portPlan struct {
	line   serialport.Config
	blocks []*block
}

// plan groups the sensors by port, refusing ports whose sensors disagree
// on the line settings, and packs each port's sensors into blocks.
func plan(sensors []config.Sensor) ([]*portPlan, error) {
	var ports []*portPlan
	byPath := map[string]*portPlan{}
	firstOn := map[string]string{} // port → id of its first sensor
	type key struct {
		slave    int
		kind     string
		interval time.Duration
	}
	groups := map[string]map[key][]config.Sensor{}
	var order = map[string][]key{}
	for _, s := range sensors {
		var problem error
		Check(&s, func(field, format string, args ...any) {
			if problem == nil {
				problem = fmt.Errorf("sensor %s: %s: %s", s.ID, field, fmt.Sprintf(format, args...))
			}
		})
		if problem != nil {
			return nil, problem
		}
		line := lineOf(&s)
		p := byPath[s.Port]
		if p == nil {
			p = &portPlan{line: line}
			byPath[s.Port] = p
			firstOn[s.Port] = s.ID
			groups[s.Port] = map[key][]config.Sensor{}
			ports = append(ports, p)
		} else if p.line != line {
			return nil, fmt.Errorf("sensor %s: port %s settings %s differ from %s on sensor %s: sensors on one port share its settings",
				s.ID, s.Port, describe(line), describe(p.line), firstOn[s.Port])
		}
		k := key{s.Slave, s.Kind, s.Interval.D()}
		if _, seen := groups[s.Port][k]; !seen {
			order[s.Port] = append(order[s.Port], k)
		}
		groups[s.Port][k] = append(groups[s.Port][k], s)
	}
	for _, p := range ports {
		for _, k := range order[p.line.Path] {
			p.blocks = append(p.blocks, pack(groups[p.line.Path][k])...)
		}
	}
	return ports, nil
}

func describe(c serialport.Config) string {
	return fmt.Sprintf("%d %d%c%d", c.Baud, c.DataBits, c.Parity[0]-'a'+'A', c.StopBits)
}

// pack puts sensors of one slave, kind and interval into as few requests
// as the request limits and maxGap allow.
func pack(ss []config.Sensor) []*block {
	ss = slices.Clone(ss)
	slices.SortStableFunc(ss, func(a, b config.Sensor) int { return a.Register - b.Register })
	limit := maxRegisters
	if isBits(ss[0].Kind) {
		limit = maxBits
	}
	var out []*block
	var cur *block
	for _, s := range ss {
		end := s.Register + width(s.Type) // one past the sensor's last register
		if cur == nil || s.Register-(cur.start+cur.count) > maxGap || end-cur.start > limit {
			cur = &block{slave: byte(s.Slave), kind: s.Kind, start: s.Register, interval: s.Interval.D()}
			out = append(out, cur)
		}
		cur.count = max(cur.count, end-cur.start)
		cur.timeout = max(cur.timeout, s.Timeout.D())
		cur.sensors = append(cur.sensors, sensor{
			id: s.ID, unit: s.Unit, register: s.Register,
			typ: s.Type, order: s.WordOrder, scale: s.Scale, offset: s.Offset,
		})
	}
	return out
}

// value decodes sensor s from the data a block's request returned.
func (b *block) value(s sensor, data []byte) (float64, error) {
	i := s.register - b.start
	var raw float64
	var err error
	if isBits(b.kind) {
		raw, err = DecodeBit(data, i)
	} else if 2*i > len(data) {
		err = fmt.Errorf("%w: %d bytes for register %d", ErrFrame, len(data), s.register)
	} else {
		raw, err = DecodeRegisters(data[2*i:], s.typ, s.order)
	}
	if err != nil {
		return raw, err
	}
	return Scaled(raw, s.scale, s.offset), nil
}

// CheckAll reports sensors that share a port but not its line settings,
// so that `edgegw check` finds what New would refuse. The sensors have
// been through Check. (Same signature as drivers/serial's CheckAll, for a
// drivers.Factory.CheckAll hook once the registry has one.)
func CheckAll(sensors []*config.Sensor, report func(i int, field, format string, args ...any)) {
	type first struct {
		line serialport.Config
		id   string
	}
	seen := map[string]first{}
	for i, s := range sensors {
		if s.Port == "" {
			continue
		}
		line := lineOf(s)
		f, ok := seen[s.Port]
		if !ok {
			seen[s.Port] = first{line, s.ID}
			continue
		}
		if f.line != line {
			report(i, "port", "settings %s differ from %s on sensor %s: sensors on one port share its settings",
				describe(line), describe(f.line), f.id)
		}
	}
}
