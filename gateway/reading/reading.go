// Package reading is the data model every edgegw package shares: a sensor
// reading, an alert transition, a downtime event, and the spooled Record that
// carries any one of them to Kafka.
//
// It is a leaf package: it imports nothing of edgegw, so drivers, rules, the
// spool and the uplink can all depend on it without depending on each other.
package reading

import (
	"fmt"
	"time"
)

// Quality says how far a reading can be trusted. It is carried to Kafka as
// "good", "bad" or "uncertain".
type Quality uint8

const (
	// Good is a value the sensor delivered without any sign of trouble.
	Good Quality = iota
	// Bad is a reading whose value must not be used: a bus error, a CRC
	// failure, a value that is not a number. Value is then NaN or the last
	// raw value; rules ignore bad readings.
	Bad
	// Uncertain is a value that was read but may be off: an unsynchronised
	// clock, a value outside the sensor's range.
	Uncertain
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Bad:
		return "bad"
	case Uncertain:
		return "uncertain"
	}
	return fmt.Sprintf("quality(%d)", uint8(q))
}

// ParseQuality is the inverse of Quality.String.
func ParseQuality(s string) (Quality, error) {
	switch s {
	case "good":
		return Good, nil
	case "bad":
		return Bad, nil
	case "uncertain":
		return Uncertain, nil
	}
	return Bad, fmt.Errorf("unknown quality %q", s)
}

// Reading is one value of one sensor. TS is when the gateway read it (the
// driver's clock), not when it reached the pipeline or Kafka.
type Reading struct {
	Sensor  string
	TS      time.Time
	Value   float64
	Unit    string
	Quality Quality
	// ClockUnsynced marks a reading taken while the system clock was not
	// synchronised (a Pi has no real-time clock: until NTP sets it, TS may
	// be far off). It is written to Kafka as "clock_synced": false.
	ClockUnsynced bool
}

// Alert states, as carried in the alert JSON.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one transition of an alert: it started firing, or it resolved.
// TS is when this transition happened; Since is when the condition began.
// Value is the latest value of the first sensor the rule's expression names.
type Alert struct {
	Rule     string
	State    string // StateFiring or StateResolved
	Severity string
	Value    float64
	Since    time.Time
	TS       time.Time
	Message  string
}

// Downtime event states.
const (
	StateDown = "down"
	StateUp   = "up"
)

// Event is a downtime event of a machine. A "down" event is written once a
// stop has lasted the machine's min_downtime; End is then the zero time and
// Duration the time stopped so far. An "up" event closes it with End and the
// whole Duration.
type Event struct {
	Machine  string
	State    string // StateDown or StateUp
	Start    time.Time
	End      time.Time // zero while the machine is still down
	Duration time.Duration
}

// Kind tells which of a Record's payloads is set, and so which Kafka topic
// it goes to.
type Kind uint8

const (
	KindReading Kind = 1
	KindAlert   Kind = 2
	KindEvent   Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindReading:
		return "reading"
	case KindAlert:
		return "alert"
	case KindEvent:
		return "event"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is what the spool stores and the uplink sends: one reading, alert
// transition or downtime event, with the sequence number the spool gave it.
// Exactly one of Reading, Alert and Event is meaningful, chosen by Kind.
type Record struct {
	Seq     uint64
	Kind    Kind
	Reading Reading
	Alert   *Alert
	Event   *Event
}

// FromReading wraps a reading in a Record (Seq is assigned by the spool).
func FromReading(r Reading) Record { return Record{Kind: KindReading, Reading: r} }

// FromAlert wraps an alert transition in a Record.
func FromAlert(a Alert) Record { return Record{Kind: KindAlert, Alert: &a} }

// FromEvent wraps a downtime event in a Record.
func FromEvent(e Event) Record { return Record{Kind: KindEvent, Event: &e} }

// Key is the Kafka key of the record: the sensor id of a reading, the rule
// name of an alert, the machine name of an event. Records with the same key
// keep their order end to end.
func (r *Record) Key() string {
	switch r.Kind {
	case KindAlert:
		if r.Alert != nil {
			return r.Alert.Rule
		}
	case KindEvent:
		if r.Event != nil {
			return r.Event.Machine
		}
	}
	return r.Reading.Sensor
}
