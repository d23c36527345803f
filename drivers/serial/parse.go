package serial

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

var errNotANumber = errors.New("not a number")

// parseNumber reads the text a pattern's group captured. Spaces around it
// and between the sign and the digits are allowed, as is a leading +, as
// scales print them ("+  12.35"). The decimal separator is a point: a
// comma is not taken for one ("12,35" is not a number), nor are NaN, Inf,
// hexadecimal or digit-group separators, which no line device prints as a
// measurement.
func parseNumber(s string) (float64, error) {
	t := strings.TrimSpace(s)
	sign := ""
	if t != "" && (t[0] == '+' || t[0] == '-') {
		sign, t = t[:1], strings.TrimLeft(t[1:], " ")
	}
	if t == "" || !(isDigit(t[0]) || t[0] == '.') {
		return 0, fmt.Errorf("%q: %w", s, errNotANumber)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !isDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, fmt.Errorf("%q: %w", s, errNotANumber)
		}
	}
	if sign == "+" {
		sign = ""
	}
	v, err := strconv.ParseFloat(sign+t, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q: %w", s, errNotANumber)
	}
	return v, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// unescape interprets the escapes a request or delimiter may be written
// with in single-quoted YAML: \r \n \t \\ and \xHH (any byte, e.g. \x05
// for ENQ). Other characters, including real control characters from a
// double-quoted YAML string, are taken as they are.
func unescape(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, errors.New(`ends in a lone \`)
		}
		i++
		switch s[i] {
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case '\\':
			b = append(b, '\\')
		case 'x':
			if i+3 > len(s) {
				return nil, fmt.Errorf(`\x at %d needs two hex digits`, i-1)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf(`\x at %d needs two hex digits`, i-1)
			}
			b = append(b, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf(`unknown escape \%c (use \r \n \t \\ or \xHH)`, s[i])
		}
	}
	return b, nil
}
