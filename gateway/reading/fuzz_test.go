package reading

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// fuzzRecord builds a record of any kind from fuzzed fields.
func fuzzRecord(kind uint8, a, b, c string, v float64, t1, t2 int64, q uint8, seq uint64) Record {
	ts1, ts2 := time.Unix(0, t1).UTC(), time.Unix(0, t2).UTC()
	if t1 == 0 {
		ts1 = time.Time{}
	}
	switch kind % 3 {
	case 1:
		return Record{Seq: seq, Kind: KindAlert, Alert: &Alert{Rule: a, State: b, Severity: c, Value: v, Since: ts1, TS: ts2, Message: a + c}}
	case 2:
		return Record{Seq: seq, Kind: KindEvent, Event: &Event{Machine: a, State: b, Start: ts1, End: ts2, Duration: time.Duration(t2 - t1)}}
	}
	return Record{Seq: seq, Kind: KindReading, Reading: Reading{Sensor: a, TS: ts1, Value: v, Unit: b, Quality: Quality(q % 3),
		ClockUnsynced: q&4 != 0}}
}

// jsonText is what encoding/json makes of s: the oracle for our own string
// escaping (invalid UTF-8 becomes U+FFFD the same way).
func jsonText(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzRecord: the Kafka encoder (AppendJSON) writes valid JSON for any
// field values, whose strings and numbers read back as encoding/json would
// write them, with non-finite numbers as null; the spool's binary form
// round-trips exactly.
func FuzzRecord(f *testing.F) {
	f.Add(uint8(0), "press_temp", "C", "", 81.5, int64(1764316800123000000), int64(0), uint8(0), uint64(1), "gw-1")
	f.Add(uint8(1), "press_down", "firing", "critical", math.NaN(), int64(1), int64(2), uint8(1), uint64(7), "gw")
	f.Add(uint8(2), "press", "up", "", math.Inf(1), int64(-5), int64(5e18), uint8(2), uint64(math.MaxUint64), "\x00\"\\\u2028\xff")
	f.Fuzz(func(t *testing.T, kind uint8, a, b, c string, v float64, t1, t2 int64, q uint8, seq uint64, gw string) {
		r := fuzzRecord(kind, a, b, c, v, t1, t2, q, seq)

		js := r.AppendJSON(nil, gw)
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, js)
		}
		if m["gateway"] != jsonText(t, gw) {
			t.Errorf("gateway %q, want %q", m["gateway"], jsonText(t, gw))
		}
		if got, ok := m["seq"].(float64); !ok || (seq < 1<<53 && uint64(got) != seq) {
			t.Errorf("seq %v, want %d", m["seq"], seq)
		}
		var name string
		var value any
		switch r.Kind {
		case KindReading:
			name, value = m["sensor"].(string), m["value"]
			if cs, ok := m["clock_synced"]; ok != r.Reading.ClockUnsynced || ok && cs != false {
				t.Errorf("clock_synced %v (present %v) for ClockUnsynced %v", cs, ok, r.Reading.ClockUnsynced)
			}
		case KindAlert:
			name, value = m["rule"].(string), m["value"]
		case KindEvent:
			name, value = m["machine"].(string), m["duration_s"]
		}
		if name != jsonText(t, a) {
			t.Errorf("name %q, want %q", name, jsonText(t, a))
		}
		if r.Kind != KindEvent {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if value != nil {
					t.Errorf("value %v for %v, want null", value, v)
				}
			} else if value != v {
				t.Errorf("value %v, want %v", value, v)
			}
		}

		bin := r.AppendBinary(nil)
		back, err := DecodeRecord(bin)
		if err != nil {
			t.Fatalf("DecodeRecord of AppendBinary: %v", err)
		}
		back.Seq = r.Seq
		if !sameRecord(r, back) {
			t.Errorf("binary round trip:\n got %+v\nwant %+v", back, r)
		}
	})
}

// sameRecord compares records with NaN equal to NaN and times by instant.
func sameRecord(a, b Record) bool {
	norm := func(r Record) Record {
		fix := func(f *float64) {
			if math.IsNaN(*f) {
				*f = -1.5e300 // any fixed stand-in
			}
		}
		fix(&r.Reading.Value)
		if r.Alert != nil {
			x := *r.Alert
			fix(&x.Value)
			x.Since, x.TS = x.Since.UTC(), x.TS.UTC()
			r.Alert = &x
		}
		if r.Event != nil {
			x := *r.Event
			x.Start, x.End = x.Start.UTC(), x.End.UTC()
			r.Event = &x
		}
		r.Reading.TS = r.Reading.TS.UTC()
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// FuzzDecodeRecord: the spool's decoder gives a record or ErrCorrupt for any
// bytes (a torn page, a flipped bit), never a panic, and what it accepts
// encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []Record{fuzzRecord(0, "s", "C", "", 1.5, 5, 0, 0, 1), fuzzRecord(1, "r", "firing", "info", 2, 1, 2, 0, 2),
		fuzzRecord(2, "m", "down", "", 0, 3, 0, 0, 3)} {
		f.Add(r.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		again := r.AppendBinary(nil)
		back, err := DecodeRecord(again)
		if err != nil || !sameRecord(r, back) {
			t.Fatalf("accepted %x, but its re-encoding %x decodes to %+v, %v", b, again, back, err)
		}
	})
}
