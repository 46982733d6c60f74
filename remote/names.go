package remote

import (
	"fmt"
	"strings"
)

// NameLimits are an object store's limits on object names, in bytes, as
// the drivers check them before sending (s3remote, gcsremote, azremote).
type NameLimits struct {
	// Object is what the store calls an object in messages ("object",
	// "blob").
	Object string
	// MaxName is the longest name, a store prefix and its "/" included;
	// TooLong ends the message of a longer one ("S3 allows at most %d").
	MaxName int
	TooLong string
	// MaxSegment is the longest part between slashes; SegmentTooLong ends
	// the message of a longer one ("... allow at most %d").
	MaxSegment     int
	SegmentTooLong string
}

// KeyLenUnder returns the longest key a store with these limits accepts
// under prefix.
func (l NameLimits) KeyLenUnder(prefix string) int {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return l.MaxName
	}
	return l.MaxName - len(prefix) - 1
}

// Check checks a full object name (the store prefix, "", included):
// ErrInvalidKey, with a message saying which limit, when it breaks one.
func (l NameLimits) Check(name, prefix string) error {
	if len(name) > l.MaxName {
		under := ""
		if prefix != "" {
			under = fmt.Sprintf(" (the store prefix and its \"/\" take %d of them)", len(prefix)+1)
		}
		return fmt.Errorf("%w: the %s name would be %d bytes%s; "+l.TooLong,
			ErrInvalidKey, l.Object, len(name), under, l.MaxName)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if len(seg) > l.MaxSegment {
			return fmt.Errorf("%w: the %s name has a part of %d bytes between slashes (%.32q...); "+l.SegmentTooLong,
				ErrInvalidKey, l.Object, len(seg), seg, l.MaxSegment)
		}
	}
	return nil
}
