package serial

import (
	"errors"
	"math"
	"testing"
)

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"+0012.35", 12.35, true},
		{"  -  7.5 ", -7.5, true},
		{"+   12.35", 12.35, true},
		{"42", 42, true},
		{".5", 0.5, true},
		{"1.5e3", 1500, true},
		{"-0", 0, true},
		{"12,35", 0, false}, // a decimal comma is not a decimal point
		{"1,234.5", 0, false},
		{"", 0, false},
		{"+", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"0x1p3", 0, false},
		{"1_000", 0, false},
		{"1e999", 0, false},
		{"12 kg", 0, false},
		{"1 2", 0, false},
		{"--1", 0, false},
	} {
		got, err := parseNumber(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("parseNumber(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, errNotANumber) {
			t.Errorf("parseNumber(%q) = %v, %v; want errNotANumber", tc.in, got, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`P\r\n`, "P\r\n"},
		{`\x05`, "\x05"},
		{`\x1B\x021`, "\x1b\x021"},
		{`a\\b\t`, "a\\b\t"},
		{"\r\n", "\r\n"}, // already interpreted by double-quoted YAML
		{"", ""},
	} {
		got, err := unescape(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("unescape(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`\`, `\x`, `\x5`, `\xZZ`, `\q`, `a\`} {
		if got, err := unescape(in); err == nil {
			t.Errorf("unescape(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"+0012.35", "12,35", "1e999", " - 3", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseNumber(s)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("parseNumber(%q) = %v", s, v)
		}
		_, _ = unescape(s)
	})
}
