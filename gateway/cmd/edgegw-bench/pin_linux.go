package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinHarness is the first half of giving the broker CPU cpu to itself
// (-broker-cpu): this process's threads, and so the gateway and the broker
// it starts later, move to the other CPUs it may use; pinBrokerPID then
// moves the broker to cpu. It returns the CPUs left to the harness and the
// gateway.
func pinHarness(cpu int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("-broker-cpu: %w", err)
	}
	if !set.IsSet(cpu) {
		return nil, fmt.Errorf("-broker-cpu %d: not a CPU this process may use", cpu)
	}
	set.Clear(cpu)
	if set.Count() == 0 {
		return nil, fmt.Errorf("-broker-cpu %d: it is the only CPU this process may use", cpu)
	}
	if err := pinTasks(os.Getpid(), &set); err != nil {
		return nil, err
	}
	return cpuList(&set), nil
}

// cpuList is the CPUs in set, in order.
func cpuList(set *unix.CPUSet) []int {
	var cpus []int
	for c := range len(set) * 64 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// pinBrokerPID moves every thread of process pid to cpu alone.
func pinBrokerPID(pid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return pinTasks(pid, &set)
}

// pinTasks sets the affinity of every thread of process pid; threads
// started later inherit it from the thread that starts them. It goes over
// the threads again until a pass finds no new one, so that a thread
// started meanwhile by one not yet pinned does not escape.
func pinTasks(pid int, set *unix.CPUSet) error {
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("-broker-cpu: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			done[tid], fresh = true, true
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread has just ended
				return fmt.Errorf("-broker-cpu: thread %d of process %d: %w", tid, pid, err)
			}
		}
		if !fresh {
			return nil
		}
	}
}
