// Command ebreplica is the command line of ebreplica, a multi-writer
// replicated key-value store. main only wires the process to cli.Run, where
// every command lives.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ebreplica/ebreplica/cmd/ebreplica/cli"
)

func main() {
	// The first interrupt cancels the command, which stops cleanly; a
	// second one kills the process as usual.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
