package store

import "bytes"

// ProbeAbsent reports whether none of keys has a record, found with one
// probe of the record keys from the smallest of keys to the largest, as
// this request sees the store: the engine's committed state (Reader.Any,
// one seek) and the writes of the group's earlier requests and of this
// one. When none has, it remembers each key as absent, so that Record
// (and PutRecord, which reads the old record first) of them reads nothing
// from the engine.
//
// False says only that the probe could not tell: some key exists in the
// range, maybe not one of keys, maybe a deleted one (a tombstone the
// engine keeps, or a deletion written earlier in the group); Record then
// looks each key up as before. An applier of a chunk of records calls it
// first: a pull into a new replica, or a bootstrap (snapshot parts are in
// key order), finds each chunk's range empty and makes one seek per chunk
// instead of a point lookup per record that would miss.
func (t *Tx) ProbeAbsent(keys []string) (bool, error) {
	if len(keys) == 0 {
		return false, nil
	}
	lo, hi := keys[0], keys[0]
	for _, k := range keys[1:] {
		lo, hi = min(lo, k), max(hi, k)
	}
	klo, khi := recordKey(lo), recordKey(hi)
	if t.group.anyIn(klo, khi) {
		return false, nil
	}
	found, err := t.reader.Any(klo, khi)
	if err != nil || found {
		return false, err
	}
	if t.cache == nil {
		t.cache = make(map[string]*recState, len(keys))
	}
	for _, k := range keys {
		if _, ok := t.cache[k]; ok {
			continue
		}
		if len(t.slab) == 0 {
			t.slab = make([]recState, 32)
		}
		rs := &t.slab[0]
		t.slab = t.slab[1:]
		rs.mark, rs.rkey = noMark, recordKey(k) // no record, so no mark
		t.cache[k] = rs
	}
	return true, nil
}

// anyIn reports whether the group wrote (set or deleted) a key in
// [lo, hi]: O(the group's writes), which are bounded by the group's size.
func (o *overlay) anyIn(lo, hi []byte) bool {
	for _, m := range o.muts {
		if bytes.Compare(m.Key, lo) >= 0 && bytes.Compare(m.Key, hi) <= 0 {
			return true
		}
	}
	return false
}
