package redactor

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
)

// The classification of a name (a JSON key, a header name) depends only on
// the engine's configuration and the name: which rule names it, whether it
// looks like a secret, whether a detector finds anything in it. An API uses
// few names and repeats them on every record, so the engine keeps the
// classifications in fixed-size caches: one hash and one comparison instead
// of the rule look-ups, the secret-name classifier and a detector scan per
// name.

// nameCacheBits and maxCachedName size a name cache: at most nameCacheSlots
// entries of at most maxCachedName bytes each, whatever the names a stream
// carries.
const (
	nameCacheBits  = 10
	nameCacheSlots = 1 << nameCacheBits
)

// nameCache memoises a classification V of names. It is two-way
// set-associative and fixed in size: a stream of distinct names only replaces
// entries (each miss costs one small allocation), and the random multiplier
// of the slot hash keeps a sender from choosing names that collide on
// purpose. Names shorter than 2 or longer than maxCachedName bytes are never
// stored. Safe for concurrent use.
type nameCache[V any] struct {
	mul   uint64 // odd multiplier of the slot hash, random per cache
	shift uint   // 64 - log2(len(slots))
	slots []atomic.Pointer[nameEntry[V]]
	peek  []atomic.Pointer[nameEntry[V]] // JSON keys by their first bytes (peekKey); nil: none
	// peekShift is 64 - log2(len(peek)).
	peekShift uint
}

// nameEntry is one cached classification; the name is copied in (names may
// alias a record's buffers, which are reused).
type nameEntry[V any] struct {
	n     uint8
	plain bool // the name needs no escape in a JSON string (peekKey)
	name  [maxCachedName]byte
	v     V
}

func newNameCache[V any]() *nameCache[V] { return newNameCacheBits[V](nameCacheBits) }

// newNameCacheBits returns an empty cache of 1<<bits slots (bits >= 1).
func newNameCacheBits[V any](bits uint) *nameCache[V] {
	return &nameCache[V]{mul: rand.Uint64() | 1, shift: 64 - bits,
		slots: make([]atomic.Pointer[nameEntry[V]], 1<<bits)}
}

// withPeek gives c the index of peekKey: four times as many slots as c has
// (pointers only), so that two keys of one document seldom share a slot and
// evict each other on every record.
func (c *nameCache[V]) withPeek() *nameCache[V] {
	c.peek = make([]atomic.Pointer[nameEntry[V]], 4*len(c.slots))
	c.peekShift = c.shift - 2
	return c
}

// get returns the classification of name, computing it with class on a miss
// (and for a name the cache does not store).
func (c *nameCache[V]) get(name string, class func(string) V) V {
	if e := c.entry(name, class); e != nil {
		return e.v
	}
	return class(name)
}

// entry returns the cache entry of name, made with class on a miss, or nil
// for a name the cache does not store.
func (c *nameCache[V]) entry(name string, class func(string) V) *nameEntry[V] {
	n := len(name)
	if n < 2 || n > maxCachedName {
		return nil
	}
	// A cheap hash of the length and four bytes: a collision or a stream of
	// distinct names only costs a miss, never a wrong answer.
	h := uint64(n) | uint64(name[0])<<8 | uint64(name[1])<<16 | uint64(name[n/2])<<24 | uint64(name[n-1])<<32
	k := (h * c.mul) >> c.shift
	a, b := &c.slots[k], &c.slots[k^1]
	ea := a.Load()
	if ea != nil && string(ea.name[:ea.n]) == name {
		return ea
	}
	eb := b.Load()
	if eb != nil && string(eb.name[:eb.n]) == name {
		return eb
	}
	en := &nameEntry[V]{n: uint8(n), v: class(name)}
	copy(en.name[:], name)
	en.plain = true
	for _, ch := range en.name[:n] {
		if !jsonPlain[ch] {
			en.plain = false
			break
		}
	}
	if ea == nil || eb != nil && k&1 == 0 {
		a.Store(en) // free, or the pair is full: replace by parity
	} else {
		b.Store(en)
	}
	return en
}

// JSON keys are also found before they are scanned: by the four bytes after
// their opening quote (whatever they are: a short key's closing quote and
// what follows it are the same wherever the document repeats the key), in a
// direct-mapped index of entries whose names a JSON string holds as they are
// (no escape needed). A hit is an entry whose name and a closing quote follow
// the opening one: the key scanString and decode would give.

// peekSlot returns the slot of the key whose opening quote is in[i], or nil
// when fewer than four bytes follow it.
func (c *nameCache[V]) peekSlot(in []byte, i int) *atomic.Pointer[nameEntry[V]] {
	if c.peek == nil || i+5 > len(in) {
		return nil
	}
	h := uint64(binary.LittleEndian.Uint32(in[i+1:]))
	return &c.peek[(h*c.mul)>>c.peekShift]
}

// peekKey returns the entry of the key whose opening quote is in[i] when the
// index has it, else nil.
func (c *nameCache[V]) peekKey(in []byte, i int) *nameEntry[V] {
	p := c.peekSlot(in, i)
	if p == nil {
		return nil
	}
	e := p.Load()
	if e == nil {
		return nil
	}
	n, rest := int(e.n), in[i+1:]
	if n >= len(rest) || rest[n] != '"' {
		return nil
	}
	if n <= 16 && len(rest) >= 16 {
		// Two words, the bytes past the name masked off (a short name's
		// are zero in e.name): no call for the common short key.
		lo, hi := ^uint64(0), ^uint64(0)
		if n < 8 {
			lo, hi = 1<<(8*n)-1, 0
		} else if n < 16 {
			hi = 1<<(8*(n-8)) - 1
		}
		if binary.LittleEndian.Uint64(rest)&lo != binary.LittleEndian.Uint64(e.name[:8])&lo ||
			binary.LittleEndian.Uint64(rest[8:])&hi != binary.LittleEndian.Uint64(e.name[8:16])&hi {
			return nil
		}
		return e
	}
	if string(rest[:n]) != string(e.name[:n]) {
		return nil
	}
	return e
}

// peekPut indexes e, the entry of the key whose opening quote is in[i] (its
// name not escaped in the input).
func (c *nameCache[V]) peekPut(in []byte, i int, e *nameEntry[V]) {
	if e == nil || !e.plain {
		return
	}
	if p := c.peekSlot(in, i); p != nil {
		p.Store(e)
	}
}

// keyClass is the classification of a JSON object key.
type keyClass struct {
	// anywhere is the best "**.<segment>" rule matching the key (nil: none);
	// the path rules of the NFA are matched per document position.
	anywhere *rule
	// secret: secret_names applies to the key.
	secret bool
	// clean: the detectors find nothing in the key.
	clean bool
}

// classifyKey computes the keyClass of a JSON object key.
func (e *Engine) classifyKey(key string) keyClass {
	t := token{key: key}
	return keyClass{
		anywhere: e.json.anywhereBest(t, nil),
		secret:   e.secretMatch(e.offJSON, key),
		clean:    e.detClean(key),
	}
}

// detClean reports whether the detectors find nothing in s.
func (e *Engine) detClean(s string) bool {
	if len(s) < 6 || !e.detOn {
		return true
	}
	var buf [4]span
	return len(e.det.find(s, buf[:0])) == 0
}

// anywhereBest returns the best of best and the "**.<segment>" rules matching
// t: the first rule better than every other, best if none is better.
func (pr *pathRules) anywhereBest(t token, best *rule) *rule {
	if len(pr.anywhere) == 0 {
		return best
	}
	var cand []uint16
	switch {
	case t.isIdx:
		cand = pr.byIdx
	case t.key != "":
		cand = pr.byLast[t.key[len(t.key)-1]]
	}
	for _, ks := range [2][]uint16{cand, pr.anyLast} {
		for _, k := range ks {
			if a := &pr.anywhere[k]; a.segs[0].match(t) && a.r.better(best) {
				best = a.r
			}
		}
	}
	return best
}

// headerClass is the classification of a header name.
type headerClass struct {
	// rule is the most specific header rule for each direction (index
	// dir-1: request, response); nil when none.
	rule [2]*rule
	// structural: framing headers the detectors never scan; url: headers
	// holding a URL; secret: secret_names applies to the name.
	structural, url, secret bool
}

// classifyHeader computes the headerClass of a header name.
func (e *Engine) classifyHeader(name string) headerClass {
	return headerClass{
		rule:       [2]*rule{e.headers.match(name, dirRequest), e.headers.match(name, dirResponse)},
		structural: structuralHeader(name),
		url:        urlHeader(name),
		secret:     e.secretMatch(e.offHeader, name),
	}
}
