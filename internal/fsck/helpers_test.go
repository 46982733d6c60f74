package fsck_test

import (
	"github.com/ebreplica/ebreplica/internal/enginetest"
)

// The engine's test helpers that the verify tests use, as they are in
// internal/engine's tests.

var (
	backends       = enginetest.Backends
	state          = enginetest.State
	objects        = enginetest.Objects
	newReplicaOpts = enginetest.NewReplica
	mustSync       = enginetest.MustSync
)
