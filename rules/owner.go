package rules

import "github.com/edgegw/edgegw/gateway/config"

// Which machine a sensor or an alert is about, for the dashboard's view of
// one machine or one line. An explicit `machine:` in the config wins;
// otherwise a sensor belongs to the one machine whose running or reason
// expression names it, and a rule to the one machine all of its sensors
// belong to. Anything else belongs to no machine ("").

// assignOwners fills e.sensorMachine and each rule's machine.
func (e *Engine) assignOwners(c *config.Config) {
	e.sensorMachine = make([]string, len(e.sensors.ids))
	for _, s := range c.Sensors {
		if i, ok := e.sensors.index[s.ID]; ok && s.Machine != "" && e.sensors.ids[i] == s.ID {
			e.sensorMachine[i] = s.Machine
		}
	}
	for i := range e.sensorMachine {
		if e.sensorMachine[i] != "" {
			continue
		}
		owner := ""
		for _, mi := range append(append([]int(nil), e.byMachine[i]...), e.byReason[i]...) {
			name := e.machines[mi].cfg.Name
			if owner != "" && owner != name {
				owner = ""
				break
			}
			owner = name
		}
		e.sensorMachine[i] = owner
	}
	for _, r := range e.rules {
		r.machine = r.cfg.Machine
		if r.machine != "" {
			continue
		}
		owner, first := "", true
		for _, cond := range []*condition{r.cond, r.clear} {
			for _, s := range cond.names() {
				m := e.sensorMachine[s]
				if first {
					owner, first = m, false
				} else if m != owner {
					owner = ""
				}
			}
		}
		r.machine = owner
	}
}

// SensorMachines maps each sensor that belongs to a machine to that
// machine's name.
func (e *Engine) SensorMachines() map[string]string {
	out := make(map[string]string)
	for i, m := range e.sensorMachine {
		if m != "" {
			out[e.sensors.ids[i]] = m
		}
	}
	return out
}
