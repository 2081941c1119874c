package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pryvsync/pryvsync/cluster"
)

// runNATS is `pryvsync nats`: a cluster of NATS servers with JetStream in
// this process, on loopback, for trying cluster mode (make demo-cluster)
// without installing nats-server. It prints the client URLs on one line
// (the value of serve's --nats) and runs until interrupted. Production
// clusters run nats-server itself (docs/OPERATIONS.md).
func runNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./pryvsync-nats", "where the servers keep their JetStream data")
	nodes := fs.Int("nodes", 3, "how many NATS servers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *nodes < 1 {
		return usageError{"--nodes must be at least 1"}
	}
	c, err := cluster.StartNATS(*dir, *nodes)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintln(stdout, c.URLs())
	<-ctx.Done()
	return nil
}
