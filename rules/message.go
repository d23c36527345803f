package rules

import (
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
)

// messageData is what a rule's message template sees:
// {{ .Value }} {{ .Sensor }} {{ .Rule }} {{ .Severity }} {{ .Since }} {{ .Duration }} {{ .Labels }}.
type messageData struct {
	Rule     string
	Severity string
	Value    float64 // latest value of the first sensor the expression names
	Sensor   string  // the first sensor the expression names ("" if none)
	Since    time.Time
	// Duration is how long the condition has held: from Since to the
	// evaluation that rendered it (a resolved alert's: to its resolve).
	Duration time.Duration
	Labels   map[string]string // {{ .Labels.line }}
}

// parseMessage parses a rule's message template; an empty message is nil
// and renders the default.
func parseMessage(rc config.Rule, sensor string) (*template.Template, error) {
	if rc.Message == "" {
		return nil, nil
	}
	t, err := template.New(rc.Name).Parse(rc.Message)
	if err != nil {
		return nil, err
	}
	// A misspelt field ({{ .Valeu }}) parses but fails when executed: run
	// it once on sample data so that `edgegw check` reports it, not the
	// first alert at 3 a.m.
	sample := messageData{Rule: rc.Name, Severity: rc.Severity, Sensor: sensor, Labels: rc.Labels}
	if err := t.Execute(io.Discard, sample); err != nil {
		// Name the fields there are, not the Go type that lacks one.
		msg := strings.Replace(err.Error(), " in type rules.messageData", "", 1)
		return nil, fmt.Errorf("%s (a message has .Value .Sensor .Rule .Severity .Since .Duration .Labels)", msg)
	}
	return t, nil
}

// message renders r's message. A template that fails at run time (it
// passed the sample run in Check) still yields the default message, so an
// alert never goes out without one.
func (r *rule) message(d messageData) (string, error) {
	if r.tmpl != nil {
		var b strings.Builder
		err := r.tmpl.Execute(&b, d)
		if err == nil {
			return b.String(), nil
		}
		return defaultMessage(r, d.Value), err
	}
	return defaultMessage(r, d.Value), nil
}

// defaultMessage is e.g. "press_overtemp: press_temp > 80 (value 82.1)".
func defaultMessage(r *rule, v float64) string {
	return fmt.Sprintf("%s: %s (value %v)", r.cfg.Name, r.cfg.Expr, v)
}
