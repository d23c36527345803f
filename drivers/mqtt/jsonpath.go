package mqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Path is a compiled `value:` path: `$` followed by `.name`, `[index]` or
// `['name']` steps, such as `$.press.temp` or `$.zones[2].c`. Only this
// subset of JSONPath is supported: one path names one value, which is all a
// sensor needs.
type Path []step

// step is one level of a Path: an object member (key) or an array element
// (index >= 0).
type step struct {
	key   string
	index int
}

func (s step) String() string {
	if s.index >= 0 {
		return "[" + strconv.Itoa(s.index) + "]"
	}
	return "." + s.key
}

// Errors of Path.Extract, tested with errors.Is.
var (
	ErrNotJSON     = errors.New("payload is not JSON")
	ErrPathMissing = errors.New("path not in payload")
)

// ParsePath compiles a path such as `$.a.b[0]`.
func ParsePath(s string) (Path, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, fmt.Errorf("%q must start with $ (e.g. $.value)", s)
	}
	var p Path
	rest := s[1:]
	for rest != "" {
		switch rest[0] {
		case '.':
			end := strings.IndexAny(rest[1:], ".[]'\" ")
			if end < 0 {
				end = len(rest) - 1
			}
			name := rest[1 : 1+end]
			if name == "" {
				return nil, fmt.Errorf("%q: empty name after '.'", s)
			}
			p = append(p, step{key: name, index: -1})
			rest = rest[1+end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: '[' without ']'", s)
			}
			inner := rest[1:end]
			if len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0] {
				// A quoted name reaches keys that hold dots or spaces.
				p = append(p, step{key: inner[1 : len(inner)-1], index: -1})
			} else {
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 || inner[0] == '+' {
					return nil, fmt.Errorf("%q: [%s] is not an array index (0, 1, ...) or a quoted name", s, inner)
				}
				p = append(p, step{index: n})
			}
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("%q: unexpected %q (use .name or [index])", s, rest[0])
		}
	}
	return p, nil
}

func (p Path) String() string {
	var b strings.Builder
	b.WriteByte('$')
	for _, s := range p {
		b.WriteString(s.String())
	}
	return b.String()
}

// Extract returns the raw JSON text of the value the path names in doc,
// without surrounding whitespace. doc is validated in full first, so a
// truncated or garbled payload is ErrNotJSON even when the path could be
// reached; the walk after that assumes valid JSON and allocates nothing
// unless a key holds escapes. With duplicate keys the first one counts.
func (p Path) Extract(doc []byte) ([]byte, error) {
	if !json.Valid(doc) {
		return nil, ErrNotJSON
	}
	return p.extract(doc)
}

// extract is Extract on a doc already known to be valid JSON, so that
// several sensors reading one payload validate it once.
func (p Path) extract(doc []byte) ([]byte, error) {
	i := skipSpace(doc, 0)
	v := doc[i:valueEnd(doc, i)]
	for n, s := range p {
		var ok bool
		if s.index >= 0 {
			v, ok = arrayElem(v, s.index)
		} else {
			v, ok = objectMember(v, s.key)
		}
		if !ok {
			return nil, fmt.Errorf("%w: no %s at %s", ErrPathMissing, s, p[:n])
		}
	}
	return v, nil
}

// objectMember finds key in the object v (valid JSON, no outer whitespace).
func objectMember(v []byte, key string) ([]byte, bool) {
	if len(v) == 0 || v[0] != '{' {
		return nil, false
	}
	i := skipSpace(v, 1)
	for i < len(v) && v[i] == '"' {
		ke := stringEnd(v, i)
		match := keyEquals(v[i:ke], key)
		i = skipSpace(v, ke)
		i = skipSpace(v, i+1) // the ':'
		ve := valueEnd(v, i)
		if match {
			return v[i:ve], true
		}
		i = skipSpace(v, ve)
		if v[i] != ',' {
			break
		}
		i = skipSpace(v, i+1)
	}
	return nil, false
}

// arrayElem returns element n of the array v.
func arrayElem(v []byte, n int) ([]byte, bool) {
	if len(v) == 0 || v[0] != '[' {
		return nil, false
	}
	i := skipSpace(v, 1)
	if v[i] == ']' {
		return nil, false
	}
	for k := 0; ; k++ {
		ve := valueEnd(v, i)
		if k == n {
			return v[i:ve], true
		}
		i = skipSpace(v, ve)
		if v[i] != ',' {
			return nil, false
		}
		i = skipSpace(v, i+1)
	}
}

// keyEquals compares a quoted JSON key with key, decoding escapes only
// when the key holds any.
func keyEquals(quoted []byte, key string) bool {
	raw := quoted[1 : len(quoted)-1]
	if strings.IndexByte(string(raw), '\\') < 0 {
		return string(raw) == key
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return false
	}
	return s == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}
