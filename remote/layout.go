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
//	quarantine/...             copies of objects that failed verification
//	probe-<nonce>              scratch object of ProbeConditional, deleted at once
//
// No name is the "folder" of another. The probe's scratch object sits
// beside store.json, in no folder of its own: on a server that keeps
// objects as files (versitygw), creating and deleting objects in a folder
// that empties and is removed meanwhile can fail ("Existing Object is a
// directory", seen under the real-process chaos test).
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
