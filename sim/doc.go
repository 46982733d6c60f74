// Package sim is a deterministic, seeded simulator of many real replicas.
package sim
