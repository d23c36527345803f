package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Why a payload gave no reading. Both are dropped and counted; they differ
// in the drop reason.
var (
	// ErrNotANumber is a value that is not a number, a boolean or on/off.
	ErrNotANumber = errors.New("not a number")
	// ErrNaN is a value that parsed but is NaN or infinite: a sensor
	// reporting a fault rather than a measurement.
	ErrNaN = errors.New("NaN or infinite")
)

// parseNumber reads a whole payload (or a JSON string's content) as a
// number. Plant devices publish switches as true/false or on/off, so those
// read as 1/0, in any case.
func parseNumber(b []byte) (float64, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return 0, fmt.Errorf("%w: empty payload", ErrNotANumber)
	case bytes.EqualFold(b, []byte("true")), bytes.EqualFold(b, []byte("on")):
		return 1, nil
	case bytes.EqualFold(b, []byte("false")), bytes.EqualFold(b, []byte("off")):
		return 0, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %s", ErrNaN, quote(b))
		}
		return 0, fmt.Errorf("%w: %s", ErrNotANumber, quote(b))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: %s", ErrNaN, quote(b))
	}
	return f, nil
}

// jsonNumber converts the raw JSON value a path selected: a number, a
// boolean, or a string holding what parseNumber accepts ("23.5", "on").
func jsonNumber(raw []byte) (float64, error) {
	switch {
	case len(raw) == 0:
		return 0, ErrNotANumber
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%w: %s", ErrNotANumber, quote(raw))
		}
		return parseNumber([]byte(s))
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%w: %s", ErrNaN, quote(raw))
		}
		return f, nil
	case string(raw) == "true":
		return 1, nil
	case string(raw) == "false":
		return 0, nil
	}
	return 0, fmt.Errorf("%w: %s", ErrNotANumber, quote(raw))
}

// quote shortens a bad value for a log line: payloads can be large.
func quote(b []byte) string {
	const max = 40
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(strings.ToValidUTF8(s, "\uFFFD"))
}
