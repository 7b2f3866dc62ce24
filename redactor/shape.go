package redactor

import (
	"unicode"
	"unicode/utf8"
)

// The shape fake (kind "shape", action "shape") replaces free text such as
// names and postal addresses by text of the same shape: every letter by a
// random letter of the same script and case, every digit by a digit of the
// same digit set, and keeps white space, punctuation and combining marks. Each
// replacement has the byte length of the character it replaces, so the value
// keeps its rune count and byte length; a non-ASCII address stays non-ASCII
// (and in its script), so a shadow's validation behaves as in production.

// runeSet is a pool of replacement letters of one script and case, all of the
// same UTF-8 length.
type runeSet []rune

func (rs runeSet) pick(r *stream) rune {
	n := len(rs)
	if n <= 256 {
		return rs[r.intn(n)]
	}
	v := int(r.byte())<<16 | int(r.byte())<<8 | int(r.byte())
	return rs[v%n]
}

// collect returns the runes of [lo, hi] satisfying keep.
func collect(lo, hi rune, keep func(rune) bool) runeSet {
	var out runeSet
	for c := lo; c <= hi; c++ {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

func isLetterUpper(c rune) bool { return unicode.IsLetter(c) && unicode.IsUpper(c) }
func isLetterLower(c rune) bool { return unicode.IsLetter(c) && unicode.IsLower(c) }
func isLetterOther(c rune) bool {
	return unicode.IsLetter(c) && !unicode.IsUpper(c) && !unicode.IsLower(c)
}

// shapeScript maps a block of code points to its replacement pools.
type shapeScript struct {
	lo, hi       rune    // block of the input character
	upper, lower runeSet // cased scripts
	other        runeSet // uncased letters (CJK, Arabic, ...)
}

var shapeScripts []shapeScript

func init() {
	latinUpper := collect(0xC0, 0x17F, func(c rune) bool { return isLetterUpper(c) && c != 0x130 })
	latinLower := collect(0xC0, 0x17F, func(c rune) bool { return isLetterLower(c) && c != 0x131 && c != 0x149 && c != 0x17F })
	add := func(lo, hi rune, upper, lower, other runeSet) {
		shapeScripts = append(shapeScripts, shapeScript{lo, hi, upper, lower, other})
	}
	// Latin with diacritics (Latin-1 Supplement, Extended-A and -B): 2 bytes.
	add(0xC0, 0x24F, latinUpper, latinLower, latinLower)
	// Greek.
	add(0x370, 0x3FF, collect(0x391, 0x3A9, isLetterUpper), collect(0x3B1, 0x3C9, isLetterLower), collect(0x3B1, 0x3C9, isLetterLower))
	// Cyrillic.
	add(0x400, 0x4FF, collect(0x410, 0x42F, isLetterUpper), collect(0x430, 0x44F, isLetterLower), collect(0x430, 0x44F, isLetterLower))
	// Armenian.
	add(0x530, 0x58F, collect(0x531, 0x556, isLetterUpper), collect(0x561, 0x586, isLetterLower), collect(0x561, 0x586, isLetterLower))
	// Hebrew, Arabic: uncased.
	add(0x590, 0x5FF, nil, nil, collect(0x5D0, 0x5EA, isLetterOther))
	add(0x600, 0x6FF, nil, nil, collect(0x621, 0x64A, func(c rune) bool { return isLetterOther(c) && c != 0x640 }))
	// Devanagari, Thai: 3 bytes, uncased.
	add(0x900, 0x97F, nil, nil, collect(0x905, 0x939, isLetterOther))
	add(0xE00, 0xE7F, nil, nil, collect(0xE01, 0xE2E, isLetterOther))
	// Hiragana, Katakana.
	add(0x3040, 0x309F, nil, nil, collect(0x3041, 0x3096, isLetterOther))
	add(0x30A0, 0x30FF, nil, nil, collect(0x30A1, 0x30FA, isLetterOther))
	// CJK unified ideographs.
	add(0x3400, 0x9FFF, nil, nil, collect(0x4E00, 0x9FA5, isLetterOther))
	// Hangul syllables.
	add(0xAC00, 0xD7A3, nil, nil, collect(0xAC00, 0xD7A3, isLetterOther))
	// Full-width Latin.
	add(0xFF00, 0xFFEF, collect(0xFF21, 0xFF3A, isLetterUpper), collect(0xFF41, 0xFF5A, isLetterLower), collect(0xFF66, 0xFF9D, isLetterOther))
}

// fakeShape returns the shape-keeping fake of v.
func fakeShape(r *stream, v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			b = append(b, fakeClassByte(r, c))
			i++
			continue
		}
		ru, size := utf8.DecodeRuneInString(v[i:])
		i += size
		if ru == utf8.RuneError && size == 1 {
			b = append(b, r.lower()) // invalid byte: never copied
			continue
		}
		b = utf8.AppendRune(b, shapeRune(r, ru))
	}
	return string(b)
}

// shapeRune replaces one non-ASCII rune, keeping its UTF-8 length.
func shapeRune(r *stream, c rune) rune {
	switch {
	case unicode.IsDigit(c):
		return shapeDigit(r, c)
	case !unicode.IsLetter(c):
		return c // punctuation, symbols, white space, combining marks
	}
	want := utf8.RuneLen(c)
	for k := range shapeScripts {
		sc := &shapeScripts[k]
		if c < sc.lo || c > sc.hi {
			continue
		}
		set := sc.other
		switch {
		case unicode.IsUpper(c) && sc.upper != nil:
			set = sc.upper
		case unicode.IsLower(c) && sc.lower != nil:
			set = sc.lower
		}
		if len(set) > 0 && utf8.RuneLen(set[0]) == want {
			return set.pick(r)
		}
		break
	}
	// Another script: a letter of the same case and UTF-8 length from the
	// same 128-code-point block, else from the Latin or CJK pools.
	base := c &^ 0x7F
	for range 32 {
		d := base + rune(r.intn(128))
		if unicode.IsLetter(d) && unicode.IsUpper(d) == unicode.IsUpper(c) &&
			unicode.IsLower(d) == unicode.IsLower(c) && utf8.RuneLen(d) == want {
			return d
		}
	}
	switch want {
	case 2:
		if unicode.IsUpper(c) {
			return shapeScripts[0].upper.pick(r)
		}
		return shapeScripts[0].lower.pick(r)
	case 3:
		return cjkPool.pick(r)
	}
	return c
}

// shapeDigit replaces a decimal digit by a digit of the same digit set (ASCII
// digits are handled by fakeClassByte).
func shapeDigit(r *stream, c rune) rune {
	first := c
	for first > 0 && unicode.IsDigit(first-1) && c-first < 64 {
		first--
	}
	zero := first + (c-first)/10*10
	d := zero + rune(r.intn(10))
	if unicode.IsDigit(d) && utf8.RuneLen(d) == utf8.RuneLen(c) {
		return d
	}
	return c
}
