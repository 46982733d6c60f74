package remote

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ebreplica/ebreplica/clock"
)

// Bucket layout, relative to the backend's root (drivers add their own
// prefix):
//
//	store.json                 manifest
//	replicas/<replica-id>.json replica registry
//	log/<position>             delta segments; 20-digit zero-padded position
//	snap/<position>/index      snapshot index (written last)
//	snap/<position>/part-<nonce>-NNNN
//	quarantine/log-<position>-<unix nanos>-<nonce>
//	                           copies of segments that failed verification
//	probe-<nonce>              scratch object of ProbeConditional, deleted at once
//
// No name is the "folder" of another. The probe's scratch object sits
// beside store.json, in no folder of its own: on a server that keeps
// objects as files (versitygw), creating and deleting objects in a folder
// that empties and is removed meanwhile can fail ("Existing Object is a
// directory", seen under the real-process chaos test).
//
// Every object name is built and parsed here; the bodies' formats are in
// package remote/format (store.json, registries, snapshot indexes) and
// remote/segment (log segments and snapshot parts).
const (
	ManifestKey    = "store.json"
	ReplicasPrefix = "replicas/"
	LogPrefix      = "log/"
	SnapPrefix     = "snap/"
	QuarantinePref = "quarantine/"
	ProbePrefix    = "probe-"
)

// LogKey returns the object name of log position pos.
func LogKey(pos uint64) string { return fmt.Sprintf("%s%020d", LogPrefix, pos) }

// ParseLogKey parses a log object name; ok is false for anything else.
func ParseLogKey(key string) (pos uint64, ok bool) {
	s, found := strings.CutPrefix(key, LogPrefix)
	if !found || len(s) != 20 {
		return 0, false
	}
	p, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return p, true
}

// RegistryKey returns the registry object name of a replica.
func RegistryKey(id clock.ReplicaID) string { return ReplicasPrefix + id.String() + ".json" }

// SnapDir returns the folder of the snapshot at pos: snap/<20-digit pos>/.
// It is no object of its own; its index and parts sit in it.
func SnapDir(pos uint64) string { return fmt.Sprintf("%s%020d/", SnapPrefix, pos) }

// SnapKey returns the object name of the index of the snapshot at pos.
func SnapKey(pos uint64) string { return SnapDir(pos) + "index" }

// PartKey returns the object name of part n of the snapshot at pos written
// by the compactor that chose nonce: snap/<pos>/part-<nonce>-NNNN (n takes
// at least 4 digits).
func PartKey(pos uint64, nonce string, n int) string {
	return fmt.Sprintf("%spart-%s-%04d", SnapDir(pos), nonce, n)
}

// PartPrefix returns what the names of every part of the snapshot at pos
// start with.
func PartPrefix(pos uint64) string { return SnapDir(pos) + "part-" }

// ParseSnapKey splits a name under snap/ into its position and the rest
// (after the position's slash); ok is false when key is not
// snap/<20-digit position>/<something>. It does not check the rest: see
// IsPartName.
func ParseSnapKey(key string) (pos uint64, rest string, ok bool) {
	s, found := strings.CutPrefix(key, SnapPrefix)
	if !found || len(s) < 22 || s[20] != '/' {
		return 0, "", false
	}
	p, err := strconv.ParseUint(s[:20], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return p, s[21:], true
}

// IsPartName reports whether rest (a name after snap/<pos>/) is
// part-<lower-case hex nonce>-<4 or more digits>, as PartKey makes with a
// hex nonce.
func IsPartName(rest string) bool {
	s, ok := strings.CutPrefix(rest, "part-")
	i := strings.LastIndexByte(s, '-')
	if !ok || i <= 0 {
		return false
	}
	nonce, n := s[:i], s[i+1:]
	isHex := func(r rune) bool { return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' }
	isDigit := func(r rune) bool { return r >= '0' && r <= '9' }
	return len(n) >= 4 && strings.IndexFunc(nonce, func(r rune) bool { return !isHex(r) }) < 0 &&
		strings.IndexFunc(n, func(r rune) bool { return !isDigit(r) }) < 0
}

// ParseRegistryKey parses a registry object name; ok is false unless key
// is exactly RegistryKey of the id it names.
func ParseRegistryKey(key string) (id clock.ReplicaID, ok bool) {
	name, found := strings.CutPrefix(key, ReplicasPrefix)
	text, okName := strings.CutSuffix(name, ".json")
	id, err := clock.ParseReplicaID(text)
	if !found || !okName || err != nil || RegistryKey(id) != key {
		return clock.ReplicaID{}, false
	}
	return id, true
}

// QuarantineLogKey returns the name of the quarantined copy of the log
// segment at pos that a repair made at unixNanos:
// quarantine/log-<20-digit pos>-<unix nanos>-<nonce>.
func QuarantineLogKey(pos uint64, unixNanos int64, nonce string) string {
	return fmt.Sprintf("%slog-%020d-%d-%s", QuarantinePref, pos, unixNanos, nonce)
}
