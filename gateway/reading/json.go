package reading

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Schema is the value of the `schema` header of each Kafka record, by kind.
const (
	SchemaReading = "edgegw.reading.v1"
	SchemaAlert   = "edgegw.alert.v1"
	SchemaEvent   = "edgegw.event.v1"
)

// Schema returns the schema header value for the record's kind.
func (r *Record) Schema() string {
	switch r.Kind {
	case KindAlert:
		return SchemaAlert
	case KindEvent:
		return SchemaEvent
	}
	return SchemaReading
}

// TimeLayout is how every timestamp is written in the JSON: RFC 3339 in UTC
// with milliseconds, always three digits so consumers see one shape.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendJSON appends the record's Kafka value (see DESIGN.md, "Kafka
// records") to dst. The JSON is written by hand because this runs once per
// record on the hot path; field order is fixed. A value that is not a finite
// number is written as null.
func (r *Record) AppendJSON(dst []byte, gateway string) []byte {
	dst = append(dst, `{"gateway":`...)
	dst = appendJSONString(dst, gateway)
	switch r.Kind {
	case KindAlert:
		a := r.Alert
		if a == nil {
			a = &Alert{}
		}
		dst = append(dst, `,"rule":`...)
		dst = appendJSONString(dst, a.Rule)
		dst = append(dst, `,"state":`...)
		dst = appendJSONString(dst, a.State)
		dst = append(dst, `,"severity":`...)
		dst = appendJSONString(dst, a.Severity)
		dst = append(dst, `,"value":`...)
		dst = appendJSONFloat(dst, a.Value)
		dst = append(dst, `,"since":`...)
		dst = appendJSONTime(dst, a.Since)
		dst = append(dst, `,"ts":`...)
		dst = appendJSONTime(dst, a.TS)
		dst = append(dst, `,"message":`...)
		dst = appendJSONString(dst, a.Message)
	case KindEvent:
		e := r.Event
		if e == nil {
			e = &Event{}
		}
		dst = append(dst, `,"machine":`...)
		dst = appendJSONString(dst, e.Machine)
		dst = append(dst, `,"state":`...)
		dst = appendJSONString(dst, e.State)
		dst = append(dst, `,"start":`...)
		dst = appendJSONTime(dst, e.Start)
		dst = append(dst, `,"end":`...)
		dst = appendJSONTime(dst, e.End)
		dst = append(dst, `,"duration_s":`...)
		dst = appendJSONFloat(dst, e.Duration.Seconds())
	default:
		x := &r.Reading
		dst = append(dst, `,"sensor":`...)
		dst = appendJSONString(dst, x.Sensor)
		dst = append(dst, `,"ts":`...)
		dst = appendJSONTime(dst, x.TS)
		dst = append(dst, `,"value":`...)
		dst = appendJSONFloat(dst, x.Value)
		dst = append(dst, `,"unit":`...)
		dst = appendJSONString(dst, x.Unit)
		dst = append(dst, `,"quality":`...)
		dst = appendJSONString(dst, x.Quality.String())
		if x.ClockUnsynced {
			dst = append(dst, `,"clock_synced":false`...)
		}
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	return append(dst, '}')
}

func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

func appendJSONTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so every value is valid JSON whatever a sensor sent.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
