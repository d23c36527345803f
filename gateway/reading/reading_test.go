package reading

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 8, 30, 1, 123456789, time.UTC)

func records() []Record {
	return []Record{
		FromReading(Reading{Sensor: "press_temp", TS: t0, Value: 81.25, Unit: "C", Quality: Good}),
		FromReading(Reading{Sensor: "weird", TS: t0, Value: math.NaN(), Unit: "µ\"\\\n\x01\xff", Quality: Bad}),
		FromAlert(Alert{Rule: "press_overtemp", State: StateFiring, Severity: "critical", Value: 82,
			Since: t0.Add(-10 * time.Second), TS: t0, Message: "Press oil temperature 82 C"}),
		FromEvent(Event{Machine: "press", State: StateDown, Start: t0, Duration: 31500 * time.Millisecond}),
		FromEvent(Event{Machine: "press", State: StateUp, Start: t0, End: t0.Add(time.Minute), Duration: time.Minute}),
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for _, r := range records() {
		b := r.AppendBinary(nil)
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("%v: decode: %v", r.Kind, err)
		}
		// NaN never equals itself; compare its bits instead.
		if r.Kind == KindReading && math.IsNaN(r.Reading.Value) {
			if !math.IsNaN(got.Reading.Value) {
				t.Fatalf("NaN decoded as %v", got.Reading.Value)
			}
			got.Reading.Value, r.Reading.Value = 0, 0
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		if k := EncodedKind(b); k != r.Kind {
			t.Errorf("EncodedKind = %v, want %v", k, r.Kind)
		}
		// Every strict prefix is rejected, never a panic or a silent success.
		for i := 0; i < len(b); i++ {
			if _, err := DecodeRecord(b[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: prefix %d/%d: err = %v, want ErrCorrupt", r.Kind, i, len(b), err)
			}
		}
	}
	unsynced := FromReading(Reading{Sensor: "s", TS: t0, ClockUnsynced: true})
	for _, c := range []struct {
		b    []byte
		want Kind
	}{{unsynced.AppendBinary(nil), KindReading}, {nil, 0}, {[]byte{codecV1}, 0}, {[]byte{9, byte(KindAlert)}, 0}} {
		if k := EncodedKind(c.b); k != c.want {
			t.Errorf("EncodedKind(%x) = %v, want %v", c.b, k, c.want)
		}
	}
}

func TestJSONShape(t *testing.T) {
	want := []string{
		`{"gateway":"gw-1","sensor":"press_temp","ts":"2026-11-27T08:30:01.123Z","value":81.25,"unit":"C","quality":"good","seq":42}`,
		`{"gateway":"gw-1","sensor":"weird","ts":"2026-11-27T08:30:01.123Z","value":null,"unit":"µ\"\\\n\u0001\ufffd","quality":"bad","seq":42}`,
		`{"gateway":"gw-1","rule":"press_overtemp","state":"firing","severity":"critical","value":82,"since":"2026-11-27T08:29:51.123Z","ts":"2026-11-27T08:30:01.123Z","message":"Press oil temperature 82 C","seq":42}`,
		`{"gateway":"gw-1","machine":"press","state":"down","start":"2026-11-27T08:30:01.123Z","end":null,"duration_s":31.5,"seq":42}`,
		`{"gateway":"gw-1","machine":"press","state":"up","start":"2026-11-27T08:30:01.123Z","end":"2026-11-27T08:31:01.123Z","duration_s":60,"seq":42}`,
	}
	for i, r := range records() {
		r.Seq = 42
		got := string(r.AppendJSON(nil, "gw-1"))
		if got != want[i] {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want[i])
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Errorf("record %d: not valid JSON: %v", i, err)
		}
	}
}

func TestKeyAndSchema(t *testing.T) {
	rs := records()
	for i, want := range []struct{ key, schema string }{
		{"press_temp", SchemaReading}, {"weird", SchemaReading},
		{"press_overtemp", SchemaAlert}, {"press", SchemaEvent}, {"press", SchemaEvent},
	} {
		if k := rs[i].Key(); k != want.key {
			t.Errorf("record %d: key %q, want %q", i, k, want.key)
		}
		if s := rs[i].Schema(); s != want.schema {
			t.Errorf("record %d: schema %q, want %q", i, s, want.schema)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := records()[0]
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		r.Seq++
		buf = r.AppendJSON(buf[:0], "gw-line1-01")
	}
}

// A reading taken before the clock was synchronised says so; its spool form
// is the v2 format, which v1 readers' records do not need.
func TestClockUnsyncedMark(t *testing.T) {
	r := FromReading(Reading{Sensor: "t", TS: time.Date(1970, 1, 1, 0, 0, 12, 0, time.UTC), Value: 1, Quality: Good, ClockUnsynced: true})
	r.Seq = 7
	want := `{"gateway":"gw","sensor":"t","ts":"1970-01-01T00:00:12.000Z","value":1,"unit":"","quality":"good","clock_synced":false,"seq":7}`
	if got := string(r.AppendJSON(nil, "gw")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	bin := r.AppendBinary(nil)
	if bin[0] != codecV2 {
		t.Errorf("format %d, want %d", bin[0], codecV2)
	}
	back, err := DecodeRecord(bin)
	if err != nil || !back.Reading.ClockUnsynced {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	r.Reading.ClockUnsynced = false
	if bin := r.AppendBinary(nil); bin[0] != codecV1 {
		t.Errorf("an unmarked reading is written as format %d, want %d", bin[0], codecV1)
	}
}
