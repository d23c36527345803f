// Temporary: pins every dependency in go.mod/go.sum while the packages that
// use them are written. Removed once each is imported for real.
package main

import (
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/expr-lang/expr"
	_ "github.com/jonboulle/clockwork"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/mochi-mqtt/server/v2/hooks/auth"
	_ "github.com/mochi-mqtt/server/v2/listeners"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/segmentio/kafka-go/compress"
	_ "github.com/tarm/serial"
	_ "github.com/twmb/franz-go/pkg/kerr"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/pkg/kmsg"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "periph.io/x/conn/v3/gpio"
	_ "periph.io/x/devices/v3/bmxx80"
	_ "periph.io/x/host/v3"
)

func main() {}
