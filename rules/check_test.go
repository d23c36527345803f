package rules

import (
	"slices"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

// checkHeader is a valid config up to line 8; each case's YAML starts at
// line 9, so the expected line numbers can be read off the case.
const checkHeader = `gateway: {id: gw-test}
uplink:
  kafka:
    brokers: ["127.0.0.1:9092"]
sensors:
  - {id: press_temp, driver: sim}
  - {id: press_running, driver: sim}
  - {id: oil_temp, driver: sim}
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "valid rules and machine",
			yaml: `machines:
  - {name: press, running: "press_running == 1"}
rules:
  - {name: hot, expr: "press_temp > 80 && abs(oil_temp - 50) < 10", message: "{{ .Value }} C"}
  - {name: local, expr: "let t = press_temp; t > 1"}
`,
		},
		{
			name: "unknown sensor",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_tmp > 80"
`,
			want: []string{`cfg.yaml:11: rules[0].expr: unknown sensor "press_tmp"`},
		},
		{
			name: "every unknown sensor once, in source order",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_tmp > 80 || oil > 3 || press_tmp < -5"
`,
			want: []string{
				`cfg.yaml:11: rules[0].expr: unknown sensor "press_tmp"`,
				`cfg.yaml:11: rules[0].expr: unknown sensor "oil"`,
			},
		},
		{
			name: "syntax error",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_temp >"
`,
			want: []string{`cfg.yaml:11: rules[0].expr: unexpected token EOF (1:12)`},
		},
		{
			name: "not boolean",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_temp + 1"
`,
			want: []string{`cfg.yaml:11: rules[0].expr: expected bool, but got float64`},
		},
		{
			name: "unknown function is not an unknown sensor",
			yaml: `rules:
  - name: press_overtemp
    expr: "foo(press_temp)"
`,
			want: []string{`cfg.yaml:11: rules[0].expr: unknown name foo (1:1)`},
		},
		{
			name: "template does not parse",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_temp > 80"
    message: "{{ .Value "
`,
			want: []string{`cfg.yaml:12: rules[0].message: template: press_overtemp:1: unclosed action`},
		},
		{
			name: "template names a missing field",
			yaml: `rules:
  - name: press_overtemp
    expr: "press_temp > 80"
    message: "{{ .Valeu }}"
`,
			want: []string{`cfg.yaml:12: rules[0].message: template: press_overtemp:1:3: executing "press_overtemp" at <.Valeu>: can't evaluate field Valeu (a message has .Value .Sensor .Rule .Severity .Since .Duration .Labels)`},
		},
		{
			name: "machine running names an unknown sensor",
			yaml: `machines:
  - name: press
    running: "press_run == 1"
`,
			want: []string{`cfg.yaml:11: machines[0].running: unknown sensor "press_run"`},
		},
		{
			name: "valid history functions, clear, keep_firing_for; min/max of numbers stay builtins",
			yaml: `rules:
  - name: stale
    expr: "age(press_temp) > 30 || rate(oil_temp, \"1m\") < 0.5"
    clear: "age(press_temp) < 5 && delta(oil_temp, \"1h30m\") != 0"
    keep_firing_for: 1m
    message: "{{ .Sensor }} {{ .Value }} {{ .Duration }} {{ .Labels }}"
  - {name: b, expr: "avg(press_temp, '5m') > 200 && min(oil_temp, \"10s\") < max(press_temp, \"500ms\")"}
  - {name: c, expr: "max(press_temp, oil_temp) > 80 && min(1, 2) < 3 && changes(press_running, \"10m\") > 4"}
`,
		},
		{
			name: "bad windows",
			yaml: `rules:
  - name: a
    expr: "avg(press_temp, \"5 min\") > 200"
  - name: b
    expr: "rate(oil_temp, \"0s\") > 1 || max(press_temp, \"5x\") > 3"
  - name: c
    expr: "let w = \"5m\"; delta(press_temp, w) > 1 || changes(press_temp, 5) > 1"
`,
			want: []string{
				`cfg.yaml:11: rules[0].expr: avg: window "5 min" is not a duration`,
				`cfg.yaml:13: rules[1].expr: rate: window "0s" is not positive`,
				`cfg.yaml:13: rules[1].expr: max: window "5x" is not a duration`,
				`cfg.yaml:15: rules[2].expr: delta: window must be a quoted duration such as "5m", not w`,
				`cfg.yaml:15: rules[2].expr: changes: window must be a quoted duration such as "5m", not 5`,
			},
		},
		{
			name: "non-sensor arguments and wrong arity",
			yaml: `rules:
  - name: a
    expr: "avg(press_temp * 2, \"5m\") > 200 || age(\"press_temp\") > 3"
  - name: b
    expr: "let t = press_temp; age(t) > 1 || max(3, \"1m\") > 2"
  - name: c
    expr: "age(press_temp, \"1m\") > 1 || rate(oil_temp) > 1"
  - name: d
    expr: "age(press_tmp) > 30"
`,
			want: []string{
				`cfg.yaml:11: rules[0].expr: avg: first argument must be a sensor id, not press_temp * 2`,
				`cfg.yaml:11: rules[0].expr: age: first argument must be a sensor id, not "press_temp"`,
				`cfg.yaml:13: rules[1].expr: age: first argument must be a sensor id, not t`,
				`cfg.yaml:13: rules[1].expr: max: first argument must be a sensor id, not 3`,
				`cfg.yaml:15: rules[2].expr: age: wants one sensor, as age(press_temp)`,
				`cfg.yaml:15: rules[2].expr: rate: wants a sensor and a window, as rate(press_temp, "5m")`,
				`cfg.yaml:17: rules[3].expr: unknown sensor "press_tmp"`,
			},
		},
		{
			name: "clear is checked like expr",
			yaml: `rules:
  - name: hot
    expr: "press_temp > 80"
    clear: "press_tmp < 75"
  - name: warm
    expr: "press_temp > 60"
    clear: "avg(press_temp, \"1 m\")"
`,
			want: []string{
				`cfg.yaml:12: rules[0].clear: unknown sensor "press_tmp"`,
				`cfg.yaml:15: rules[1].clear: avg: window "1 m" is not a duration`,
			},
		},
		{
			name: "clear must be boolean",
			yaml: `rules:
  - name: hot
    expr: "press_temp > 80"
    clear: "avg(press_temp, \"1m\")"
`,
			want: []string{`cfg.yaml:12: rules[0].clear: expected bool, but got float64`},
		},
		{
			name: "unknown reason sensor",
			yaml: `machines:
  - name: press
    running: "press_running == 1"
    reason: press_reson
  - {name: saw, running: "press_running == 1", reason: press_temp}
`,
			want: []string{`cfg.yaml:12: machines[0].reason: unknown sensor "press_reson"`},
		},
		{
			name: "rule named like a machine's stale-signal alert",
			yaml: `machines:
  - {name: press, running: "press_running == 1"}
rules:
  - {name: press_signal_stale, expr: "press_temp > 1"}
  - {name: saw_signal_stale, expr: "press_temp > 1"}
`,
			want: []string{`cfg.yaml:12: rules[0].name: "press_signal_stale" is taken by machine "press"'s stale-signal alert`},
		},
		{
			name: "problems of several rules in line order",
			yaml: `rules:
  - {name: a, expr: "press_temp >"}
  - {name: b, expr: "press_temp > 1"}
  - {name: c, expr: "oil > 1"}
`,
			want: []string{
				`cfg.yaml:10: rules[0].expr: unexpected token EOF (1:12)`,
				`cfg.yaml:12: rules[2].expr: unknown sensor "oil"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("cfg.yaml", []byte(checkHeader+tt.yaml))
			if err != nil {
				t.Fatalf("config.Parse: %v", err)
			}
			var got []string
			for _, p := range Check(c) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check:\n got %q\nwant %q", got, tt.want)
			}
			// New refuses exactly what Check reports, as config.Problems.
			_, err = New(c, nil, t0)
			if ps, ok := config.AsProblems(err); (err != nil) != (len(tt.want) > 0) || (err != nil && (!ok || len(ps) != len(tt.want))) {
				t.Errorf("New: %v", err)
			}
		})
	}
}
