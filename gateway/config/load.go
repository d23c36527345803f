package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int
	Path string // field path, e.g. sensors[2].topic
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Path, p.Msg)
}

// Problems is every problem found in a file, in line order. It is the error
// Load returns for an invalid file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the problems by file, line, then path.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Path < ps[j].Path
	})
}

// Load reads, decodes, defaults and validates a config file. A file that
// cannot be read is a plain error; an invalid one is a Problems listing
// everything wrong, returned with the partly filled Config so that callers
// may add their own checks.
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; file names them in problems.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{File: file, lines: map[string]pos{}}
	in := &includer{files: map[*yaml.Node]string{}}
	root, ps := in.tree(file, data, nil)
	c.Includes = in.read
	if root == nil {
		return c, ps
	}
	d := &decoder{file: file, files: in.files, lines: c.lines, problems: ps}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	c.applyDefaults()
	ps = append(d.problems, c.validate()...)
	if len(ps) > 0 {
		ps.Sort()
		return c, ps
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, m[0]), ": ")
	}
	return Problem{File: file, Line: line, Msg: "YAML syntax: " + msg}
}

// Line returns the line of a field path ("sensors[2].topic"), falling back
// to its nearest parent that has one, then to line 1.
func (c *Config) Line(path string) int { return c.pos(path).line }

// pos is where path was written (File or an included file), falling back
// to its nearest parent that has a place, then to File's line 1.
func (c *Config) pos(path string) pos {
	for p := path; p != ""; {
		if at, ok := c.lines[p]; ok {
			return at
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return pos{c.File, 1}
}

// Problem builds a Problem at path, for checks made outside this package.
func (c *Config) Problem(path, format string, args ...any) Problem {
	at := c.pos(path)
	return Problem{File: at.file, Line: at.line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// AsProblems returns err as Problems when it is one.
func AsProblems(err error) (Problems, bool) {
	var ps Problems
	ok := errors.As(err, &ps)
	return ps, ok
}
