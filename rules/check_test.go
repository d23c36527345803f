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
			want: []string{`cfg.yaml:12: rules[0].message: template: press_overtemp:1:3: executing "press_overtemp" at <.Valeu>: can't evaluate field Valeu (a message has .Value .Rule .Severity .Since .Duration .Labels)`},
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
