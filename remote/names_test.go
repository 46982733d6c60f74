package remote

import (
	"errors"
	"strings"
	"testing"
)

func TestNameLimits(t *testing.T) {
	l := NameLimits{Object: "object", MaxName: 20, TooLong: "at most %d", MaxSegment: 5, SegmentTooLong: "parts of at most %d"}
	for _, c := range []struct {
		name, prefix, want string
	}{
		{"p/ab/cde", "p", ""},
		{"p/" + strings.Repeat("a/", 9) + "a", "p", `21 bytes (the store prefix and its "/" take 2 of them); at most 20`},
		{strings.Repeat("b/", 10) + "c", "", "21 bytes; at most 20"},
		{"p/abcdef", "p", "a part of 6 bytes"},
	} {
		err := l.Check(c.name, c.prefix)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.name, err, c.want)
		}
	}
	if l.KeyLenUnder("") != 20 || l.KeyLenUnder("/pre/") != 16 {
		t.Errorf("KeyLenUnder: %d, %d", l.KeyLenUnder(""), l.KeyLenUnder("/pre/"))
	}
}
