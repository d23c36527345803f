//go:build !linux

package main

import "errors"

var errPin = errors.New("-broker-cpu: only on Linux")

func pinHarness(int) ([]int, error) { return nil, errPin }
func pinBrokerPID(int, int) error   { return errPin }
