package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// scalarDecoder is implemented by types with their own text form
// (Duration, Size).
type scalarDecoder interface {
	decodeScalar(n *yaml.Node) error
}

// decoder walks the YAML node tree and the Go value together, so that every
// problem can be reported with its field path and line, and decoding goes on
// after one to report the next. yaml.v3's own strict mode stops at the first
// custom-type error and names Go types instead of paths.
type decoder struct {
	file     string
	files    map[*yaml.Node]string // the file of each node read from an included file
	lines    map[string]pos
	problems Problems
}

// fileOf is the file n was read from.
func (d *decoder) fileOf(n *yaml.Node) string {
	if f, ok := d.files[n]; ok {
		return f
	}
	return d.file
}

func (d *decoder) problem(n *yaml.Node, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.fileOf(n), Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = pos{d.fileOf(n), n.Line}
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	if v.CanAddr() {
		if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
			if n.Kind != yaml.ScalarNode {
				d.problem(n, path, "expected a single value, got %s", kindName(n))
				return
			}
			if err := sd.decodeScalar(n); err != nil {
				d.problem(n, path, "%v", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

// mappingPairs returns the key/value pairs of a mapping, with YAML merge
// keys (<<: *defaults) expanded; explicit keys win over merged ones.
func (d *decoder) mappingPairs(n *yaml.Node, path string) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			if val.Kind == yaml.AliasNode {
				val = val.Alias
			}
			srcs := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				srcs = val.Content
			}
			for _, src := range srcs {
				if src.Kind == yaml.AliasNode {
					src = src.Alias
				}
				if src.Kind != yaml.MappingNode {
					d.problem(k, path, "<< must merge a mapping")
					continue
				}
				merged = append(merged, d.mappingPairs(src, path)...)
			}
			continue
		}
		own = append(own, [2]*yaml.Node{k, val})
	}
	seen := map[string]bool{}
	for _, p := range own {
		seen[p[0].Value] = true
	}
	out := own
	for _, p := range merged {
		if !seen[p[0].Value] {
			seen[p[0].Value] = true
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]int{}
	for _, p := range d.mappingPairs(n, path) {
		k, val := p[0], p[1]
		fp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problem(k, fp, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		i, ok := fields[k.Value]
		if !ok {
			d.problem(k, fp, "unknown key%s", suggest(k.Value, names))
			continue
		}
		d.lines[fp] = pos{d.fileOf(k), k.Line}
		d.decode(val, v.Field(i), fp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, p := range d.mappingPairs(n, path) {
		k, val := p[0], p[1]
		fp := joinPath(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.problem(k, fp, "duplicate key")
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, fp)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, path, "expected a single value, got %s", kindName(n))
		return
	}
	s := n.Value
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.problem(n, path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.problem(n, path, "expected a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.problem(n, path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.problem(n, path, "cannot hold a value of Go type %s", v.Type())
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// suggest names the closest known key when the unknown one looks like a
// typo of it.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if strings.HasPrefix(n, key+"_") {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
		if dist := editDistance(key, n); dist < bestD {
			best, bestD = n, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sort.Strings(names)
	return fmt.Sprintf(" (known: %s)", strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
