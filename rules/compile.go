package rules

import (
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/edgegw/edgegw/gateway/config"
)

// Check compiles every rule's expr and message and every machine's running
// expression of c, and returns what is wrong with them as FILE:LINE problems
// (none: nil). It is what `edgegw check` adds to config.Load's own checks.
func Check(c *config.Config) config.Problems {
	_, _, ps := compile(c)
	return ps
}

// condition is one compiled boolean expression over sensor values.
type condition struct {
	program *vm.Program
	// sensors are the indices (into the engine's sensor table) of the
	// sensors the expression names, distinct, in source order: sensors[0]
	// is the one whose value an alert carries.
	sensors []int
}

// sensorTable indexes the configured sensors. Every compiled condition
// refers to sensors by these indices, so the engine's per-reading work is
// slice indexing rather than map lookups.
type sensorTable struct {
	ids   []string
	index map[string]int
	// env is the type environment expressions are checked against: every
	// sensor is a float64. Booleans (a running signal) are numbers too, so
	// a rule says `press_running == 1`.
	env map[string]any
}

func newSensorTable(c *config.Config) *sensorTable {
	t := &sensorTable{index: map[string]int{}, env: map[string]any{}}
	for _, s := range c.Sensors {
		if _, dup := t.index[s.ID]; dup || s.ID == "" {
			continue // config.Load reports it; compile against the first
		}
		t.index[s.ID] = len(t.ids)
		t.ids = append(t.ids, s.ID)
		t.env[s.ID] = 0.0
	}
	return t
}

// compile builds every rule and machine condition of c. It returns all
// problems rather than stopping at the first, as `edgegw check` lists them.
// Machines are compiled here so that check catches their mistakes now; the
// downtime tracker that runs them comes with machine events.
func compile(c *config.Config) (*sensorTable, []*rule, config.Problems) {
	t := newSensorTable(c)
	var ps config.Problems
	for i, m := range c.Machines {
		if strings.TrimSpace(m.Running) == "" {
			continue // config.Load already says it is required
		}
		path := fmt.Sprintf("machines[%d].running", i)
		_, msgs := t.compile(m.Running)
		for _, msg := range msgs {
			ps = append(ps, c.Problem(path, "%s", msg))
		}
	}
	rules := make([]*rule, 0, len(c.Rules))
	for i, rc := range c.Rules {
		if strings.TrimSpace(rc.Expr) == "" {
			continue // config.Load already says it is required
		}
		path := fmt.Sprintf("rules[%d]", i)
		r := &rule{cfg: rc, hold: rc.For.D()}
		cond, msgs := t.compile(rc.Expr)
		for _, msg := range msgs {
			ps = append(ps, c.Problem(path+".expr", "%s", msg))
		}
		r.cond = cond
		tmpl, err := parseMessage(rc)
		if err != nil {
			ps = append(ps, c.Problem(path+".message", "%s", firstLine(err.Error())))
		}
		r.tmpl = tmpl
		rules = append(rules, r)
	}
	if len(ps) > 0 {
		ps.Sort()
		return nil, nil, ps
	}
	return t, rules, nil
}

// compile turns one expression into a condition, or explains in one-line
// messages why it cannot.
func (t *sensorTable) compile(src string) (*condition, []string) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, []string{firstLine(err.Error())}
	}
	// Unknown names are reported as unknown sensors, all of them, before
	// expr's checker would stop at the first with "unknown name".
	names := valueNames(tree)
	var msgs []string
	cond := &condition{}
	for _, n := range names {
		i, ok := t.index[n]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("unknown sensor %q", n))
			continue
		}
		cond.sensors = append(cond.sensors, i)
	}
	if len(msgs) > 0 {
		return nil, msgs
	}
	cond.program, err = expr.Compile(src,
		expr.Env(t.env),
		expr.AsBool(),
		// now() reads the wall clock; rules see time only through the `now`
		// their caller passes, so that `for:` and tests agree.
		expr.DisableBuiltin("now"),
	)
	if err != nil {
		return nil, []string{firstLine(err.Error())}
	}
	return cond, nil
}

// valueNames returns the identifiers of tree that stand for values (not a
// called function, not a `let` variable), distinct, in source order.
func valueNames(tree *parser.Tree) []string {
	v := &nameCollector{callees: map[ast.Node]bool{}, locals: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	slices.SortStableFunc(v.idents, func(a, b *ast.IdentifierNode) int {
		return a.Location().From - b.Location().From
	})
	var names []string
	for _, id := range v.idents {
		if v.callees[id] || v.locals[id.Value] || slices.Contains(names, id.Value) {
			continue
		}
		names = append(names, id.Value)
	}
	return names
}

type nameCollector struct {
	idents  []*ast.IdentifierNode
	callees map[ast.Node]bool
	locals  map[string]bool
}

func (v *nameCollector) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		v.idents = append(v.idents, n)
	case *ast.CallNode:
		v.callees[n.Callee] = true
	case *ast.VariableDeclaratorNode:
		v.locals[n.Name] = true
	}
}

// firstLine keeps expr's and text/template's message and position but drops
// expr's source snippet lines: a problem is one line.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// rule is one compiled alert rule and its lifecycle state.
type rule struct {
	cfg   config.Rule
	hold  time.Duration // `for:`
	cond  *condition
	tmpl  *template.Template // nil: the default message
	alert alertState

	// errors counts evaluations that failed (treated as false); err is the
	// latest failure, logged only when it differs from the one before.
	errors uint64
	err    string
}
