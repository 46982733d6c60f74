// Package proptest holds rapid property tests and exported checkers for
// ebreplica, and the rapid generators they share.
//
// The generators (gen.go) draw from a small fixed pool of replica ids and
// small counters and HLC values on purpose: collisions of ids, dots and
// timestamps are what exercise the interesting cases (siblings, ties,
// superseded versions), and a wide value space would almost never hit them.
//
// Histories (see Histories and Run) are realistic causal histories of one key
// across a few replicas, with ground truth kept outside the version-vector
// machinery: for every write, the set of dots its writer had seen. Tests
// check merge results against that oracle, in the style of the naive
// oracles of etcd-io/raft's quorum package. HLC times in histories are drawn
// at random and deliberately do not follow causality, so any test that passes
// over them shows that merging never depends on an HLC.
//
// rapid prints the seed of a failing run; rerun it with
// go test -run TestName -rapid.seed=SEED.
package proptest
