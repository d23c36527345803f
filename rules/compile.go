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
// expression of c, checks machines' reason sensors and that no rule takes a
// machine's stale-signal alert name, and returns what is wrong with them as FILE:LINE problems
// (none: nil). It is what `edgegw check` adds to config.Load's own checks.
func Check(c *config.Config) config.Problems {
	_, _, _, ps := compile(c)
	return ps
}

// condition is one compiled boolean expression over sensor values.
type condition struct {
	program *vm.Program
	// sensors are the indices (into the engine's sensor table) of the
	// sensors the expression names, distinct, in source order: sensors[0]
	// is the one whose value an alert carries.
	sensors []int
	// needs are the sensors the expression reads as plain values (not
	// only through history functions): without a value for each, it is
	// false.
	needs []int
	// env: the program reads sensor values from the environment map
	// (an identifier the sensor patcher left alone) rather than only
	// through sensor functions.
	env bool
}

// names are the sensors c names; none for a nil c (no clear:).
func (c *condition) names() []int {
	if c == nil {
		return nil
	}
	return c.sensors
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
	// hist is what the history functions of every compiled expression
	// read; the engine built from this table feeds it.
	hist *history
	// vals are the sensors' latest values, boxed once per reading, which
	// compiled expressions read through sensor functions (see
	// sensorPatcher); the engine built from this table writes them.
	vals []any
}

func newSensorTable(c *config.Config) *sensorTable {
	t := &sensorTable{index: map[string]int{}, env: map[string]any{}, hist: newHistory()}
	for _, s := range c.Sensors {
		if _, dup := t.index[s.ID]; dup || s.ID == "" {
			continue // config.Load reports it; compile against the first
		}
		t.index[s.ID] = len(t.ids)
		t.ids = append(t.ids, s.ID)
		t.env[s.ID] = 0.0
		t.vals = append(t.vals, 0.0)
	}
	return t
}

// compile builds every rule and machine condition of c. It returns all
// problems rather than stopping at the first, as `edgegw check` lists them.
func compile(c *config.Config) (*sensorTable, []*rule, []*machine, config.Problems) {
	t := newSensorTable(c)
	var ps config.Problems
	var machines []*machine
	for i, m := range c.Machines {
		if strings.TrimSpace(m.Running) == "" {
			continue // config.Load already says it is required
		}
		path := fmt.Sprintf("machines[%d].running", i)
		cond, msgs := t.compile(m.Running)
		for _, msg := range msgs {
			ps = append(ps, c.Problem(path, "%s", msg))
		}
		mc := &machine{cfg: m, cond: cond, reason: -1}
		if m.Reason != "" {
			if ri, ok := t.index[m.Reason]; ok {
				mc.reason = ri
			} else {
				ps = append(ps, c.Problem(fmt.Sprintf("machines[%d].reason", i), "unknown sensor %q", m.Reason))
			}
		}
		machines = append(machines, mc)
	}
	// Each machine's stale-signal alert is named <machine>_signal_stale
	// (see machine.go): no rule may take that name.
	stale := map[string]string{}
	for _, m := range c.Machines {
		if m.Name != "" {
			stale[staleRule(m.Name)] = m.Name
		}
	}
	rules := make([]*rule, 0, len(c.Rules))
	for i, rc := range c.Rules {
		if strings.TrimSpace(rc.Expr) == "" {
			continue // config.Load already says it is required
		}
		path := fmt.Sprintf("rules[%d]", i)
		if m, ok := stale[rc.Name]; ok {
			ps = append(ps, c.Problem(path+".name", "%q is taken by machine %q's stale-signal alert", rc.Name, m))
		}
		r := &rule{cfg: rc, hold: rc.For.D(), keep: rc.KeepFiringFor.D()}
		cond, msgs := t.compile(rc.Expr)
		for _, msg := range msgs {
			ps = append(ps, c.Problem(path+".expr", "%s", msg))
		}
		r.cond = cond
		if strings.TrimSpace(rc.Clear) != "" {
			r.clear, msgs = t.compile(rc.Clear)
			for _, msg := range msgs {
				ps = append(ps, c.Problem(path+".clear", "%s", msg))
			}
		}
		sensor := ""
		if cond != nil && len(cond.sensors) > 0 {
			sensor = t.ids[cond.sensors[0]]
		}
		tmpl, err := parseMessage(rc, sensor)
		if err != nil {
			ps = append(ps, c.Problem(path+".message", "%s", firstLine(err.Error())))
		}
		r.tmpl = tmpl
		rules = append(rules, r)
	}
	if len(ps) > 0 {
		ps.Sort()
		return nil, nil, nil, ps
	}
	return t, rules, machines, nil
}

// compile turns one expression into a condition, or explains in one-line
// messages why it cannot.
func (t *sensorTable) compile(src string) (*condition, []string) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, []string{firstLine(err.Error())}
	}
	a := t.analyse(tree)
	// Unknown names are reported as unknown sensors, all of them, before
	// expr's checker would stop at the first with "unknown name"; then
	// what is wrong with history function calls.
	var msgs []string
	cond := &condition{}
	for _, n := range a.names {
		i, ok := t.index[n]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("unknown sensor %q", n))
			continue
		}
		cond.sensors = append(cond.sensors, i)
		if a.plain[n] {
			cond.needs = append(cond.needs, i)
		}
	}
	msgs = append(msgs, a.msgs...)
	if len(msgs) > 0 {
		return nil, msgs
	}
	// The type environment holds only the sensors this expression names:
	// expr reflects over the whole map on every Compile, and with a
	// thousand sensors and two hundred rules that was 73 MB of garbage
	// and most of the start-up time.
	env := make(map[string]any, len(a.names))
	for _, n := range a.names {
		env[n] = t.env[n]
	}
	opts := []expr.Option{
		expr.Env(env),
		expr.AsBool(),
		// now() reads the wall clock; rules see time only through the `now`
		// their caller passes, so that `for:` and tests agree.
		expr.DisableBuiltin("now"),
		// History calls first, so that their sensor arguments are gone
		// when the sensor patcher walks the tree (expr runs patchers one
		// after the other, each over the whole tree).
		expr.Patch(historyPatcher{t}),
		expr.Patch(sensorPatcher{t: t, at: a.plainAt}),
	}
	for _, i := range cond.needs {
		vals := t.vals
		opts = append(opts, expr.Function(sensorFunc(i),
			func(...any) (any, error) { return vals[i], nil },
			new(func() float64)))
	}
	h := t.hist
	for _, q := range a.queries {
		i := h.queryIndex(q)
		opts = append(opts, expr.Function(queryFunc(q, i),
			func(...any) (any, error) { return h.evalQuery(i), nil },
			new(func() float64)))
	}
	cond.program, err = expr.Compile(src, opts...)
	if err != nil {
		return nil, []string{firstLine(err.Error())}
	}
	cond.env = slices.ContainsFunc(cond.program.Bytecode, func(op vm.Opcode) bool { return op == vm.OpLoadFast || op == vm.OpLoadEnv })
	return cond, nil
}

// analysis is what compile needs to know of a parsed expression.
type analysis struct {
	// names are the identifiers that stand for values (not a called
	// function, not a `let` variable), distinct, in source order.
	names []string
	// plain holds the names used as values outside history functions.
	plain map[string]bool
	// plainAt are those uses: source offset of the identifier to name.
	plainAt map[int]string
	queries []query  // of the history calls, valid ones
	msgs    []string // what is wrong with the history calls
}

func (t *sensorTable) analyse(tree *parser.Tree) analysis {
	v := &nameCollector{callees: map[ast.Node]bool{}, locals: map[string]bool{}, historyArgs: map[ast.Node]bool{}}
	ast.Walk(&tree.Node, v)
	byPos := func(a, b ast.Node) int { return a.Location().From - b.Location().From }
	slices.SortStableFunc(v.idents, func(a, b *ast.IdentifierNode) int { return byPos(a, b) })
	slices.SortStableFunc(v.calls, byPos)
	an := analysis{plain: map[string]bool{}, plainAt: map[int]string{}}
	for _, call := range v.calls {
		q, isHistory, msg := t.historyCall(call, v.locals)
		if !isHistory {
			continue
		}
		if _, args := callOf(call); len(args) > 0 {
			if id, ok := args[0].(*ast.IdentifierNode); ok {
				v.historyArgs[id] = true
			}
		}
		switch {
		case msg != "":
			an.msgs = append(an.msgs, msg)
		case q.sensor >= 0 && !slices.Contains(an.queries, q):
			an.queries = append(an.queries, q)
		}
	}
	for _, id := range v.idents {
		if v.callees[id] || v.locals[id.Value] {
			continue
		}
		if !v.historyArgs[id] {
			an.plain[id.Value] = true
			an.plainAt[id.Location().From] = id.Value
		}
		if !slices.Contains(an.names, id.Value) {
			an.names = append(an.names, id.Value)
		}
	}
	return an
}

type nameCollector struct {
	idents  []*ast.IdentifierNode
	callees map[ast.Node]bool
	locals  map[string]bool
	calls   []ast.Node // CallNode and BuiltinNode
	// historyArgs are the sensor arguments of history function calls:
	// uses that need no value.
	historyArgs map[ast.Node]bool
}

func (v *nameCollector) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		v.idents = append(v.idents, n)
	case *ast.CallNode:
		v.callees[n.Callee] = true
		v.calls = append(v.calls, n)
	case *ast.BuiltinNode:
		v.calls = append(v.calls, n)
	case *ast.VariableDeclaratorNode:
		v.locals[n.Name] = true
	}
}

// sensorFunc is the name of the function a sensor read as a value
// becomes: like queryFunc, no identifier an expression could write.
func sensorFunc(i int) string { return fmt.Sprintf("value#%d", i) }

// sensorPatcher replaces each identifier that reads a sensor's value (at
// is where they are, as analyse found them: not a callee, not a `let`
// name, not a history function's argument) by a call of that sensor's
// function, which returns the table's boxed value: a slice index instead
// of a map lookup by name per read, and a reading then costs no map
// write. Anything it leaves alone still reads the environment map
// (condition.env), which the engine then keeps up to date as well.
type sensorPatcher struct {
	t  *sensorTable
	at map[int]string
}

func (p sensorPatcher) Visit(node *ast.Node) {
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok || p.at[id.Location().From] != id.Value {
		return
	}
	i, ok := p.t.index[id.Value]
	if !ok {
		return
	}
	ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: sensorFunc(i)}})
}

// firstLine keeps expr's and text/template's message and position but drops
// expr's source snippet lines: a problem is one line.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// rule is one compiled alert rule and its lifecycle state.
type rule struct {
	cfg     config.Rule
	machine string        // the machine the alert is about, "" for none (owner.go)
	hold    time.Duration // `for:`
	keep    time.Duration // `keep_firing_for:`
	cond    *condition
	clear   *condition         // nil: the alert resolves when cond turns false
	tmpl    *template.Template // nil: the default message
	alert   alertState
	// restored: a pending or firing alert taken back by Restore, not
	// evaluated until the sensors its expression reads as values have
	// readings again.
	restored bool

	// errors counts evaluations that failed (treated as false); err is the
	// latest failure, logged only when it differs from the one before.
	errors uint64
	err    string
}
