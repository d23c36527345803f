package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"
)

// A config file may include others, so that a fleet's gateways share the
// plant's Kafka brokers and TLS, a site's broker, a line's rules:
//
//	include: [../line.defaults.yaml]     # or one path; relative to this file
//
// Included files are read first, in order, each one's own includes before
// it; then the including file is laid over them: mappings merge key by key
// (the including file wins), a value that is not a mapping replaces the
// included one, and the top-level lists sensors, machines and rules are
// joined, the included entries first. Every problem names the file and line
// where its value was written.

// maxIncludeDepth bounds how deep includes nest.
const maxIncludeDepth = 8

// joined are the top-level lists an including file adds to rather than
// replaces.
var joined = []string{"sensors", "machines", "rules"}

type includer struct {
	files map[*yaml.Node]string // node -> file, for every node read
	read  []string              // included files, in reading order
}

// tree parses file (data) and resolves its includes into one node; chain
// is the files including it, to catch a cycle. A nil node comes with the
// problems that prevent decoding.
func (in *includer) tree(file string, data []byte, chain []string) (*yaml.Node, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{syntaxProblem(file, err)}
	}
	if len(bytes.TrimSpace(data)) == 0 || len(doc.Content) == 0 {
		return nil, Problems{{File: file, Line: 1, Msg: "the file is empty"}}
	}
	root := doc.Content[0]
	in.mark(root, file)
	if root.Kind != yaml.MappingNode {
		return root, nil // the decoder says what is wrong with it
	}
	var incs []*yaml.Node
	var own []*yaml.Node
	var ps Problems
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "include" || k.Kind != yaml.ScalarNode {
			own = append(own, k, v)
			continue
		}
		switch v.Kind {
		case yaml.ScalarNode:
			incs = append(incs, v)
		case yaml.SequenceNode:
			incs = append(incs, v.Content...)
		default:
			ps = append(ps, Problem{File: file, Line: v.Line, Path: "include", Msg: "expected a file name or a list of them"})
		}
	}
	if len(incs) == 0 && len(ps) == 0 {
		return root, nil
	}
	chain = append(chain, file)
	var base *yaml.Node
	for i, n := range incs {
		path := fmt.Sprintf("include[%d]", i)
		problem := func(format string, args ...any) {
			ps = append(ps, Problem{File: file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
		}
		if n.Kind != yaml.ScalarNode || n.Value == "" {
			problem("expected a file name")
			continue
		}
		name := n.Value
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(file), name)
		}
		switch {
		case slices.Contains(chain, name):
			problem("%s includes itself (through %v)", n.Value, chain)
			continue
		case len(chain) >= maxIncludeDepth:
			problem("includes nest deeper than %d files", maxIncludeDepth)
			continue
		}
		data, err := readConfigFile(name)
		if err != nil {
			problem("%v", err)
			continue
		}
		in.read = append(in.read, name)
		sub, sps := in.tree(name, data, chain)
		ps = append(ps, sps...)
		if sub == nil {
			continue
		}
		if sub.Kind != yaml.MappingNode {
			problem("%s is not a mapping of keys", n.Value)
			continue
		}
		base = in.merge(base, sub, 0)
	}
	over := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column, Content: own}
	in.files[over] = file
	return in.merge(base, over, 0), ps
}

// mark records file as the file of n and everything under it.
func (in *includer) mark(n *yaml.Node, file string) {
	if n == nil {
		return
	}
	if _, done := in.files[n]; done {
		return // an alias's target, already marked
	}
	in.files[n] = file
	for _, c := range n.Content {
		in.mark(c, file)
	}
}

// merge lays over upon base (either may be nil).
func (in *includer) merge(base, over *yaml.Node, depth int) *yaml.Node {
	switch {
	case base == nil:
		return over
	case over == nil:
		return base
	}
	b, o := deref(base), deref(over)
	if b.Kind != yaml.MappingNode || o.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: o.Line, Column: o.Column}
	in.files[out] = in.files[o]
	out.Content = append(out.Content, b.Content...)
	for i := 0; i+1 < len(o.Content); i += 2 {
		k, v := o.Content[i], o.Content[i+1]
		at := -1
		if k.Tag != "!!merge" {
			for j := 0; j+1 < len(out.Content); j += 2 {
				if bk := out.Content[j]; bk.Tag != "!!merge" && bk.Value == k.Value {
					at = j
					break
				}
			}
		}
		if at < 0 {
			out.Content = append(out.Content, k, v)
			continue
		}
		bv := deref(out.Content[at+1])
		switch {
		case depth == 0 && slices.Contains(joined, k.Value) && bv.Kind == yaml.SequenceNode && deref(v).Kind == yaml.SequenceNode:
			seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line, Column: v.Column}
			in.files[seq] = in.files[v]
			seq.Content = append(append(seq.Content, bv.Content...), deref(v).Content...)
			out.Content[at], out.Content[at+1] = k, seq
		default:
			out.Content[at], out.Content[at+1] = k, in.merge(out.Content[at+1], v, depth+1)
		}
	}
	return out
}

// maxFileSize bounds a config file: a gateway's is a few kilobytes, and a
// device or a huge file named by mistake must not hang or exhaust the load.
const maxFileSize = 4 << 20

// readConfigFile reads a config file that must be a regular file of at
// most maxFileSize bytes.
func readConfigFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", name)
	case st.Size() > maxFileSize:
		return nil, fmt.Errorf("%s is larger than %d MiB", name, maxFileSize>>20)
	}
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

// Flatten reads the config file at path with its includes resolved and
// returns it as one YAML document, with anchors, aliases and merge keys
// expanded: what a gateway that cannot see the included files needs (the
// flashing and deploy scripts install it as /etc/edgegw/config.yaml). It
// does not validate; Load does.
func Flatten(path string) ([]byte, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	in := &includer{files: map[*yaml.Node]string{}}
	root, ps := in.tree(path, data, nil)
	if len(ps) > 0 {
		return nil, ps
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(expand(root)); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// expand copies n with aliases replaced by what they name and merge keys
// (<<) resolved the way the decoder resolves them: explicit keys win.
func expand(n *yaml.Node) *yaml.Node {
	n = deref(n)
	c := *n
	c.Anchor, c.Content = "", nil
	if n.Kind != yaml.MappingNode {
		for _, x := range n.Content {
			c.Content = append(c.Content, expand(x))
		}
		return &c
	}
	var own, merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Tag != "!!merge" {
			own = append(own, k, v)
			continue
		}
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, s := range srcs {
			if s = expand(s); s.Kind == yaml.MappingNode {
				merged = append(merged, s.Content...)
			}
		}
	}
	seen := map[string]bool{}
	for i := 0; i < len(own); i += 2 {
		seen[own[i].Value] = true
		c.Content = append(c.Content, expand(own[i]), expand(own[i+1]))
	}
	for i := 0; i+1 < len(merged); i += 2 {
		if !seen[merged[i].Value] {
			seen[merged[i].Value] = true
			c.Content = append(c.Content, merged[i], merged[i+1])
		}
	}
	return &c
}
