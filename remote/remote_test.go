package remote_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
)

func TestValidateKey(t *testing.T) {
	good := []string{
		"a", "a/b", "a/b/c", "a.b", "a..b", ".hidden", "a/.b", "...", "with space", "\u00e9/\u4e16",
		"a+b=c&d?e#f%g", "~", strings.Repeat("k", remote.MaxKeyLen),
	}
	for _, k := range good {
		if err := remote.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%.40q) = %v, want nil", k, err)
		}
	}
	bad := map[string]string{
		"":                                      "empty",
		strings.Repeat("k", remote.MaxKeyLen+1): "longer than",
		"/a":                                    "leading slash",
		"/":                                     "leading slash",
		"a/":                                    "trailing slash",
		"a\\b":                                  "backslash",
		"a\x00b":                                "control",
		"a\nb":                                  "control",
		"\x1f":                                  "control",
		"\x7f":                                  "control",
		"bad\xffutf8":                           "invalid",
		"\ufffd":                                "invalid",
		"a//b":                                  "empty segment",
		".":                                     "dot segment",
		"..":                                    "dot segment",
		"a/./b":                                 "dot segment",
		"a/..":                                  "dot segment",
		"../a":                                  "dot segment",
	}
	for k, why := range bad {
		err := remote.ValidateKey(k)
		if !errors.Is(err, remote.ErrInvalidKey) || !strings.Contains(err.Error(), why) {
			t.Errorf("ValidateKey(%.40q) = %v, want ErrInvalidKey (%s)", k, err, why)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b/", "a/b", "a."} {
		if err := remote.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "//", "a//", "/a", "a//b/", "./", "../", "a\\", "a\x00"} {
		if err := remote.ValidatePrefix(p); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

func TestCounts(t *testing.T) {
	var s remote.Stats
	s.Puts.Add(3)
	s.Gets.Add(5)
	s.Lists.Add(2)
	s.Deletes.Add(1)
	s.BytesIn.Add(100)
	s.BytesOut.Add(40)
	before := s.Snapshot()
	if want := (remote.Counts{Put: 3, Get: 5, List: 2, Delete: 1, BytesIn: 100, BytesOut: 40}); before != want {
		t.Fatalf("Snapshot() = %+v, want %+v", before, want)
	}
	if before.Requests() != 11 {
		t.Errorf("Requests() = %d, want 11", before.Requests())
	}
	s.Puts.Add(1)
	s.BytesOut.Add(7)
	s.Lists.Add(4)
	d := s.Snapshot().Sub(before)
	if want := (remote.Counts{Put: 1, List: 4, BytesOut: 7}); d != want {
		t.Errorf("Sub = %+v, want %+v", d, want)
	}
	if d.Requests() != 5 {
		t.Errorf("Requests() of the difference = %d, want 5", d.Requests())
	}
	if z := before.Sub(before); z != (remote.Counts{}) {
		t.Errorf("c.Sub(c) = %+v", z)
	}
}
