package mqtt

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// ValidFilter reports why a subscription topic filter is not valid MQTT
// 3.1.1 (section 4.7): + and # only as whole levels, # only last.
func ValidFilter(f string) error {
	switch {
	case f == "":
		return errors.New("empty topic")
	case len(f) > 65535:
		return errors.New("topic longer than 65535 bytes")
	case !utf8.ValidString(f) || strings.ContainsRune(f, 0):
		return errors.New("topic is not valid UTF-8 text")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case strings.Contains(l, "#") && (l != "#" || i != len(levels)-1):
			return errors.New("# must be a whole level and the last one (e.g. line1/#)")
		case strings.Contains(l, "+") && l != "+":
			return errors.New("+ must be a whole level (e.g. line1/+/temp)")
		}
	}
	return nil
}

// matchFilter reports whether topic matches the filter, given as levels.
// Topics beginning with $ are not matched by a leading wildcard
// (MQTT-4.7.2-1), so line/# never picks up $SYS.
func matchFilter(levels []string, topic string) bool {
	if len(levels) > 0 && (levels[0] == "+" || levels[0] == "#") && strings.HasPrefix(topic, "$") {
		return false
	}
	rest, more := topic, true
	for _, l := range levels {
		if l == "#" {
			return true // also matches the parent level: a/# matches a
		}
		if !more {
			return false
		}
		var level string
		level, rest, more = strings.Cut(rest, "/")
		if l != "+" && l != level {
			return false
		}
	}
	return !more
}

// routes maps a topic to the sensors it feeds. Exact filters are a map
// lookup; only wildcard filters are tried one by one, so a gateway with
// many plain topics pays no per-message scan.
type routes struct {
	exact   map[string][]*sensor
	wild    []wildRoute
	filters []string // distinct, in config order: what is subscribed
}

type wildRoute struct {
	levels  []string
	sensors []*sensor
}

func newRoutes(sensors []*sensor) *routes {
	r := &routes{exact: map[string][]*sensor{}}
	wildIdx := map[string]int{}
	for _, s := range sensors {
		f := s.topic
		if !strings.ContainsAny(f, "+#") {
			if _, seen := r.exact[f]; !seen {
				r.filters = append(r.filters, f)
			}
			r.exact[f] = append(r.exact[f], s)
			continue
		}
		i, seen := wildIdx[f]
		if !seen {
			i = len(r.wild)
			wildIdx[f] = i
			r.wild = append(r.wild, wildRoute{levels: strings.Split(f, "/")})
			r.filters = append(r.filters, f)
		}
		r.wild[i].sensors = append(r.wild[i].sensors, s)
	}
	return r
}

// match appends to dst the sensors that topic feeds. A sensor has one
// filter, so it appears at most once.
func (r *routes) match(topic string, dst []*sensor) []*sensor {
	dst = append(dst, r.exact[topic]...)
	for _, w := range r.wild {
		if matchFilter(w.levels, topic) {
			dst = append(dst, w.sensors...)
		}
	}
	return dst
}
