package cluster

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a cluster of NATS servers with JetStream run inside this
// process, on loopback: what the tests, the benchmark and `make
// demo-cluster` run pryvsync nodes over. In production the NATS cluster is
// run on its own (docs/OPERATIONS.md).
type NATS struct {
	servers []*server.Server
}

// StartNATS starts n clustered NATS servers storing JetStream data under
// dir and waits until they are ready for connections.
func StartNATS(dir string, n int) (*NATS, error) {
	clusterPorts := make([]int, n)
	clientPorts := make([]int, n)
	for i := range n {
		var err error
		if clusterPorts[i], err = freePort(); err != nil {
			return nil, err
		}
		if clientPorts[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	c := &NATS{}
	for i := range n {
		var routes []*url.URL
		for j := range n {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", clusterPorts[j])})
			}
		}
		o := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("nats-%d", i+1)),
			Cluster:    server.ClusterOpts{Name: "pryvsync", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:     routes,
			NoLog:      true,
			NoSigs:     true,
			MaxPayload: 64 << 20, // the most NATS allows; see MinPayload
		}
		if n == 1 {
			o.Cluster, o.Routes = server.ClusterOpts{}, nil
		}
		s, err := server.NewServer(o)
		if err != nil {
			c.Close()
			return nil, err
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(30 * time.Second) {
			c.Close()
			return nil, fmt.Errorf("cluster: NATS server %s did not start", s.Name())
		}
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URLs is the client URLs of the servers still running, comma-separated
// (nats.Connect's form).
func (c *NATS) URLs() string {
	var us []string
	for _, s := range c.servers {
		if s != nil {
			us = append(us, s.ClientURL())
		}
	}
	return strings.Join(us, ",")
}

// Stop shuts server i down (a node dying).
func (c *NATS) Stop(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

// Close shuts every server down.
func (c *NATS) Close() {
	for i := range c.servers {
		c.Stop(i)
	}
}
