package mqtt

import (
	"strings"
	"testing"
)

func TestValidFilter(t *testing.T) {
	for f, ok := range map[string]bool{
		"line1/press/temp": true,
		"line1/+/temp":     true,
		"line1/#":          true,
		"#":                true,
		"+":                true,
		"+/+":              true,
		"/leading":         true,
		"$SYS/broker/#":    true,
		"":                 false,
		"line1/pr#":        false,
		"line1/#/temp":     false,
		"line1/+x/temp":    false,
		"line1/te+mp":      false,
		"a/##":             false,
		"bad\x00nul":       false,
		"bad\xffutf8":      false,
	} {
		if err := ValidFilter(f); (err == nil) != ok {
			t.Errorf("ValidFilter(%q) = %v, want ok=%v", f, err, ok)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/x/y/c", false},
		{"a/+", "a", false},
		{"a/+", "a/", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"+/+", "a/b", true},
		{"+/+", "a", false},
		{"+", "/a", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"/a", "/a", true},
	} {
		if got := matchFilter(strings.Split(tc.filter, "/"), tc.topic); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestRoutes(t *testing.T) {
	temp := &sensor{id: "temp", topic: "line1/press"}
	pres := &sensor{id: "pres", topic: "line1/press"}
	any1 := &sensor{id: "any_temp", topic: "line1/+/temp"}
	all := &sensor{id: "all", topic: "line1/#"}
	r := newRoutes([]*sensor{temp, pres, any1, all})

	if got := strings.Join(r.filters, " "); got != "line1/press line1/+/temp line1/#" {
		t.Errorf("filters = %s", got)
	}
	ids := func(ss []*sensor) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.id)
		}
		return strings.Join(out, " ")
	}
	for topic, want := range map[string]string{
		"line1/press":      "temp pres all",
		"line1/oven/temp":  "any_temp all",
		"line1/oven/other": "all",
		"line2/press":      "",
	} {
		if got := ids(r.match(topic, nil)); got != want {
			t.Errorf("match(%s) = %q, want %q", topic, got, want)
		}
	}
}

func BenchmarkRoutesMatch(b *testing.B) {
	var ss []*sensor
	for i := range 1000 {
		ss = append(ss, &sensor{id: "s", topic: "plant/line1/m" + string(rune('a'+i%26)) + "/" + strings.Repeat("x", i%7) + "v"})
	}
	ss = append(ss, &sensor{id: "w", topic: "plant/+/alarm/#"})
	r := newRoutes(ss)
	buf := make([]*sensor, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.match("plant/line1/mc/xxv", buf[:0])
	}
}
