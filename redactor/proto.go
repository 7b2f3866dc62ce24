// Protobuf messages: with a schema (field rules by name path, detectors on
// strings) and without (detectors on the wire format's text fields).

package redactor

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/mirrorline/mirrorline/grpcwire"
)

// maxProtoDepth bounds the nesting of a message decoded with a schema.
const maxProtoDepth = 100

// errSurvived is the cause of ReasonSurvived.
var errSurvived = errors.New("a detector finding survives in the scrubbed message")

// protoEd scrubs one protobuf message.
type protoEd struct {
	st *state
	j  jsonEd // walks the json_fields rules over field names
	// allowed are detector findings inside replacements (fake values a
	// detector recognises by design): verifyWire lets them through.
	allowed []string
}

// transparent lists the well-known types whose fields add no path segment:
// their JSON mapping is their content (a Struct is an object, a Value its
// value, a ListValue an array, a wrapper its value).
var transparent = map[protoreflect.FullName]bool{
	"google.protobuf.Struct": true, "google.protobuf.Value": true, "google.protobuf.ListValue": true,
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true, "google.protobuf.Int64Value": true,
	"google.protobuf.UInt64Value": true, "google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.StringValue": true, "google.protobuf.BytesValue": true,
}

// withSchema scrubs b, a message of type md. It fails closed when b does not
// decode as md or does not encode again.
func (p *protoEd) withSchema(b []byte, md protoreflect.MessageDescriptor) ([]byte, bool, error) {
	m := dynamicpb.NewMessage(md)
	if err := (proto.UnmarshalOptions{RecursionLimit: maxProtoDepth, AllowPartial: true}).Unmarshal(b, m); err != nil {
		// The error text is not kept: it could describe payload bytes.
		return nil, false, grpcErr(ReasonSchemaMismatch, "message does not decode as %s", md.FullName())
	}
	st := p.st
	p.j = jsonEd{st: st}
	base := len(st.jstates)
	defer func() { st.jstates = st.jstates[:base] }()
	for r := range st.e.json.nfa {
		st.jstates = append(st.jstates, pstate{uint16(r), 0})
	}
	lo, hi := base, len(st.jstates)
	changed, err := p.message(m, lo, hi, p.j.completed(lo, hi, nil), 0)
	if err != nil {
		return nil, false, err
	}
	out, err := proto.MarshalOptions{Deterministic: true, AllowPartial: true}.Marshal(m)
	if err != nil {
		return nil, false, grpcErr(ReasonMalformed, "encode scrubbed %s: %w", md.FullName(), err)
	}
	if !changed && bytes.Equal(out, b) {
		return b, false, nil
	}
	// Changed, or b holds more than the decoded message: a scalar field
	// sent twice (the last wins), unknown fields of a map entry (dropped by
	// the decoder), another encoding. What the decoder did not keep was not
	// scrubbed either, so the message is encoded again from what was.
	if err := (proto.UnmarshalOptions{RecursionLimit: maxProtoDepth, AllowPartial: true}).Unmarshal(out, dynamicpb.NewMessage(md)); err != nil {
		return nil, false, grpcErr(ReasonMalformed, "scrubbed %s does not decode", md.FullName())
	}
	return out, true, nil
}

// message scrubs m in place; lo:hi are the rule states of its fields and r
// the rule inherited from its parent.
func (p *protoEd) message(m protoreflect.Message, lo, hi int, r *rule, depth int) (bool, error) {
	if depth > maxProtoDepth {
		return false, grpcErr(ReasonMalformed, "message nested too deep")
	}
	md := m.Descriptor()
	changed := false
	if md.FullName() == "google.protobuf.Any" {
		c, err := p.any(m, lo, hi, r, depth)
		if err != nil {
			return false, err
		}
		changed = c
	} else {
		var fds []protoreflect.FieldDescriptor
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			fds = append(fds, fd)
			return true
		})
		slices.SortFunc(fds, func(a, b protoreflect.FieldDescriptor) int { return cmp.Compare(a.Number(), b.Number()) })
		tokenless := transparent[md.FullName()]
		for _, fd := range fds {
			c, err := p.field(m, fd, lo, hi, r, tokenless, depth)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
	}
	if u := m.GetUnknown(); len(u) > 0 {
		if r != nil && r.act != actKeep {
			// A rule on the message covers what the schema does not name.
			m.SetUnknown(nil)
			p.st.hit(r.name, 1)
			return true, nil
		}
		if r == nil {
			out, c, err := p.wire(u)
			if err != nil {
				return false, grpcErr(ReasonMalformed, "unknown fields of %s: %w", md.FullName(), err)
			}
			if err := p.verifyWire(out); err != nil {
				return false, err
			}
			if c {
				m.SetUnknown(out)
				changed = true
			}
		}
	}
	return changed, nil
}

// stepName steps the rule states over a field's name: its proto name and
// its JSON name both match.
func (p *protoEd) stepName(lo, hi int, fd protoreflect.FieldDescriptor, inherited *rule) (int, int, *rule) {
	a, b, r := p.j.step(lo, hi, token{key: string(fd.Name())}, inherited)
	if jn := fd.JSONName(); jn != "" && jn != string(fd.Name()) {
		_, d, r2 := p.j.step(lo, hi, token{key: jn}, inherited)
		if r2 != nil && r2.better(r) {
			r = r2
		}
		b = d
	}
	return a, b, r
}

// field scrubs one populated field of m.
func (p *protoEd) field(m protoreflect.Message, fd protoreflect.FieldDescriptor, lo, hi int, inherited *rule, tokenless bool, depth int) (bool, error) {
	st := p.st
	nlo, nhi, r := lo, hi, inherited
	if !tokenless {
		nlo, nhi, r = p.stepName(lo, hi, fd, inherited)
		defer func() { st.jstates = st.jstates[:nlo] }()
	}
	if r != nil {
		switch r.act {
		case actKeep:
			return false, nil
		case actRemove:
			m.Clear(fd)
			st.hit(r.name, 1)
			return true, nil
		}
	}
	changed := false
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		var kept []protoreflect.Value // elements kept when one is removed
		for i := 0; i < l.Len(); i++ {
			elo, _, er := p.j.step(nlo, nhi, token{idx: i, isIdx: true}, r)
			ehi := len(st.jstates)
			if er != nil && er.act == actRemove && er != r {
				// A rule naming the element removes it.
				st.hit(er.name, 1)
				st.jstates = st.jstates[:elo]
				if kept == nil {
					for j := range i {
						kept = append(kept, l.Get(j))
					}
				}
				changed = true
				continue
			}
			if fd.Message() != nil {
				c, err := p.message(l.Get(i).Message(), elo, ehi, er, depth+1)
				if err != nil {
					return false, err
				}
				changed = changed || c
			} else if nv, c, err := p.scalar(fd, l.Get(i), er); err != nil {
				return false, err
			} else if c {
				l.Set(i, nv)
				changed = true
			}
			st.jstates = st.jstates[:elo]
			if kept != nil {
				kept = append(kept, l.Get(i))
			}
		}
		if kept != nil {
			for j, v := range kept {
				l.Set(j, v)
			}
			l.Truncate(len(kept))
		}
	case fd.IsMap():
		c, err := p.mapField(m.Mutable(fd).Map(), fd, nlo, nhi, r, depth)
		if err != nil {
			return false, err
		}
		changed = c
	case fd.Message() != nil:
		c, err := p.message(m.Mutable(fd).Message(), nlo, nhi, r, depth+1)
		if err != nil {
			return false, err
		}
		changed = c
	default:
		nv, c, err := p.scalar(fd, m.Get(fd), r)
		if err != nil {
			return false, err
		}
		if c {
			m.Set(fd, nv)
			changed = true
		}
	}
	return changed, nil
}

// mapField scrubs a map: each entry's key is a path segment (as in the JSON
// mapping); string keys run through the detectors.
func (p *protoEd) mapField(mp protoreflect.Map, fd protoreflect.FieldDescriptor, lo, hi int, r *rule, depth int) (bool, error) {
	st := p.st
	var keys []protoreflect.MapKey
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
	vd := fd.MapValue()
	changed := false
	for _, k := range keys {
		ks := k.String()
		elo, _, er := p.j.step(lo, hi, token{key: ks}, r)
		ehi := len(st.jstates)
		if er != nil && er.act == actRemove && er != r {
			mp.Clear(k)
			st.hit(er.name, 1)
			st.jstates = st.jstates[:elo]
			changed = true
			continue
		}
		var v protoreflect.Value
		if vd.Message() != nil {
			v = mp.Mutable(k)
			c, err := p.message(v.Message(), elo, ehi, er, depth+1)
			if err != nil {
				return false, err
			}
			changed = changed || c
		} else {
			nv, c, err := p.scalar(vd, mp.Get(k), er)
			if err != nil {
				return false, err
			}
			v = nv
			if c {
				mp.Set(k, nv)
				changed = true
			}
		}
		st.jstates = st.jstates[:elo]
		if fd.MapKey().Kind() == protoreflect.StringKind && (er == nil || er.act != actKeep) {
			if nk, ok := p.text(ks); ok {
				mp.Clear(k)
				mp.Set(protoreflect.ValueOfString(nk).MapKey(), v)
				changed = true
			}
		}
	}
	return changed, nil
}

// any scrubs a google.protobuf.Any: its value is decoded with the type its
// type_url names when the schema or the linked-in registry knows it (its
// fields then sit at the Any's own path, as in the JSON mapping), else
// scrubbed without a schema.
func (p *protoEd) any(m protoreflect.Message, lo, hi int, r *rule, depth int) (bool, error) {
	fields := m.Descriptor().Fields()
	urlFD, valFD := fields.ByName("type_url"), fields.ByName("value")
	if urlFD == nil || valFD == nil || (r != nil && r.act == actKeep) {
		return false, nil
	}
	name := m.Get(urlFD).String()
	urlChanged := false
	if nu, ok := p.text(name); ok {
		// A type URL is no place for personal data: scrubbed like a string.
		m.Set(urlFD, protoreflect.ValueOfString(nu))
		urlChanged = true
	}
	if !m.Has(valFD) {
		return urlChanged, nil
	}
	val := m.Get(valFD).Bytes()
	name = name[strings.LastIndexByte(name, '/')+1:]
	if inner := p.resolve(protoreflect.FullName(name)); inner != nil {
		im := dynamicpb.NewMessage(inner)
		if (proto.UnmarshalOptions{RecursionLimit: maxProtoDepth, AllowPartial: true}).Unmarshal(val, im) == nil {
			c, err := p.message(im, lo, hi, r, depth+1)
			if err != nil {
				return false, err
			}
			out, err := proto.MarshalOptions{Deterministic: true, AllowPartial: true}.Marshal(im)
			if err != nil {
				return false, grpcErr(ReasonMalformed, "encode scrubbed Any: %w", err)
			}
			if !c && bytes.Equal(out, val) {
				return urlChanged, nil
			}
			// Changed, or the value held more than its decoding kept (see
			// withSchema): encoded again from what was scrubbed.
			m.Set(valFD, protoreflect.ValueOfBytes(out))
			return true, nil
		}
	}
	if r != nil {
		m.Clear(valFD)
		p.st.hit(r.name, 1)
		return true, nil
	}
	out, c, err := p.bytes(val)
	if err != nil {
		return false, err
	}
	if c {
		m.Set(valFD, protoreflect.ValueOfBytes(out))
	}
	return c || urlChanged, nil
}

// resolve finds a message type by name in the schema, then among the
// linked-in types (well-known types).
func (p *protoEd) resolve(name protoreflect.FullName) protoreflect.MessageDescriptor {
	if !name.IsValid() {
		return nil
	}
	if s := p.st.e.schema; s != nil {
		if d, err := s.Files().FindDescriptorByName(name); err == nil {
			if md, ok := d.(protoreflect.MessageDescriptor); ok {
				return md
			}
		}
	}
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
		return mt.Descriptor()
	}
	return nil
}

// scalar scrubs one scalar value of field fd under rule r (nil: none). A
// rule replaces a string with its action's result, a bytes value likewise
// (remove empties it), and sets a number, bool or enum to zero. Without a
// rule strings and text bytes go through the detectors, 64-bit integers
// through the card detector.
func (p *protoEd) scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value, r *rule) (protoreflect.Value, bool, error) {
	st := p.st
	if r != nil && r.act == actKeep {
		return v, false, nil
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		if r != nil {
			ns := st.applyRule(r, v.String())
			if !utf8.ValidString(ns) {
				ns = strings.ToValidUTF8(ns, "")
			}
			p.allow(ns)
			return protoreflect.ValueOfString(ns), true, nil
		}
		ns, ok := p.text(v.String())
		return protoreflect.ValueOfString(ns), ok, nil
	case protoreflect.BytesKind:
		if r != nil {
			var nb []byte
			if r.act != actRemove {
				nb = []byte(st.applyRule(r, string(v.Bytes())))
				p.allow(string(nb))
			} else {
				st.hit(r.name, 1)
			}
			return protoreflect.ValueOfBytes(nb), true, nil
		}
		nb, ok, err := p.bytes(v.Bytes())
		return protoreflect.ValueOfBytes(nb), ok, err
	}
	if r != nil {
		st.hit(r.name, 1)
		return zeroScalar(fd), true, nil
	}
	var digits string
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		digits = strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		digits = strconv.FormatUint(v.Uint(), 10)
	}
	if len(digits) >= 13 && p.cardNumber(digits) {
		return zeroScalar(fd), true, nil
	}
	return v, false, nil
}

// cardNumber reports (and counts) whether the decimal digits are a card
// number the card detector finds.
func (p *protoEd) cardNumber(digits string) bool {
	if !p.st.e.det.on[kindCard] || len(digits) > 19 {
		return false
	}
	_, ok := p.st.scrubString(digits)
	return ok
}

// zeroScalar is the zero value of a scalar field's kind.
func zeroScalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(false)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(0)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(0)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(0)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(0)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(0)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("")
	}
	return protoreflect.ValueOfBytes(nil)
}

// text scrubs a string value: JSON inside it as a JSON document, anything
// else with the detectors.
func (p *protoEd) text(s string) (string, bool) {
	st := p.st
	if len(s) >= 2 && (s[0] == '{' || s[0] == '[' || isSpace(s[0])) && looksJSON(s) {
		out, changed, err := st.scrubJSONNested([]byte(s), false, 1)
		if err == nil {
			if !changed {
				return s, false
			}
			ns := string(out)
			p.allow(ns)
			return ns, true
		}
	}
	ns, ok := st.scrubString(s)
	if ok {
		p.allow(ns)
	}
	return ns, ok
}

// bytes scrubs a bytes value without a rule: as text when it is text, as a
// protobuf message without a schema when it parses as one, else by masking
// detector findings in its raw bytes in place.
func (p *protoEd) bytes(b []byte) ([]byte, bool, error) {
	if len(b) == 0 {
		return b, false, nil
	}
	if isText(b) {
		ns, ok := p.text(string(b))
		if !ok {
			return b, false, nil
		}
		return []byte(ns), true, nil
	}
	if _, err := grpcwire.ParseMessage(b); err == nil {
		out, c, err := p.wire(b)
		if err == nil && p.verifyWire(out) == nil {
			return out, c, nil
		}
	}
	out, c := p.maskInPlace(b)
	return out, c, nil
}

// isText reports whether b is UTF-8 text without control characters other
// than tab, newline and carriage return.
func isText(b []byte) bool {
	return (grpcwire.Field{Type: protowire.BytesType, Value: b}).Text()
}

// allow records the detector findings in a replacement value, which
// verifyWire then accepts (a fake email is an email).
func (p *protoEd) allow(s string) {
	if len(s) < 6 {
		return
	}
	for _, sp := range p.st.e.det.find(s, nil) {
		p.allowed = append(p.allowed, s[sp.start:sp.end])
	}
}

// maskInPlace overwrites every detector finding in b with '*', keeping its
// length (binary content, whose structure is unknown), until none is left.
func (p *protoEd) maskInPlace(b []byte) ([]byte, bool) {
	e := p.st.e
	if len(b) < 6 || !e.det.any() {
		return b, false
	}
	spans := e.det.find(string(b), nil)
	if len(spans) == 0 {
		return b, false
	}
	out := append([]byte(nil), b...)
	for pass := 0; len(spans) > 0 && pass <= len(out); pass++ {
		for _, sp := range spans {
			for k := sp.start; k < sp.end; k++ {
				out[k] = '*'
			}
			p.st.hit(e.detRule[sp.kind].name, 1)
		}
		spans = e.det.find(string(out), spans[:0])
	}
	return out, true
}

// wire scrubs b, a protobuf message read without a schema: detectors on
// every text field, recursing into fields that parse as messages, masking
// in place in other length-delimited fields; varints that read as card
// numbers become 0. It is re-encoded only when something changed.
func (p *protoEd) wire(b []byte) ([]byte, bool, error) {
	fields, err := grpcwire.ParseMessage(b)
	if err != nil {
		return nil, false, err
	}
	if !p.wireFields(fields) {
		return b, false, nil
	}
	return grpcwire.AppendMessage(nil, fields), true, nil
}

func (p *protoEd) wireFields(fields []grpcwire.Field) bool {
	changed := false
	for i := range fields {
		f := &fields[i]
		switch f.Type {
		case protowire.VarintType:
			if v := f.Varint(); v >= 1e12 && p.cardNumber(strconv.FormatUint(v, 10)) {
				f.Value = protowire.AppendVarint(nil, 0)
				changed = true
			}
		case protowire.BytesType:
			if f.Nested {
				// Ambiguous: it reads as a message and maybe as text. A
				// finding in the text reading wins: it is scrubbed as text.
				if !f.Text() || !p.hasFinding(f.Value) {
					if p.wireFields(f.Fields) {
						changed = true
					} else {
						f.Nested = false // keep its bytes exactly
					}
					continue
				}
				f.Nested, f.Fields = false, nil
			}
			if f.Text() {
				if ns, ok := p.text(string(f.Value)); ok {
					f.Value = []byte(ns)
					changed = true
				}
				continue
			}
			if nb, ok := p.maskInPlace(f.Value); ok {
				f.Value = nb
				changed = true
			}
		}
	}
	return changed
}

// hasFinding reports whether a detector finds anything in b.
func (p *protoEd) hasFinding(b []byte) bool {
	return len(b) >= 6 && len(p.st.e.det.find(string(b), nil)) > 0
}

// verifyWire checks a message scrubbed without a schema: it parses, and no
// detector finds anything (but replacements' own findings) in its raw bytes
// or in the content of any length-delimited field, at any depth of the
// nested reading.
func (p *protoEd) verifyWire(b []byte) error {
	fields, err := grpcwire.ParseMessage(b)
	if err != nil {
		return grpcErr(ReasonMalformed, "scrubbed message does not parse: %w", err)
	}
	if !p.clean(b) {
		return grpcErr(ReasonSurvived, "%w", errSurvived)
	}
	return p.verifyFields(fields)
}

func (p *protoEd) verifyFields(fields []grpcwire.Field) error {
	for _, f := range fields {
		if f.Type != protowire.BytesType {
			continue
		}
		if !p.clean(f.Value) {
			return grpcErr(ReasonSurvived, "%w", errSurvived)
		}
		if f.Nested {
			if err := p.verifyFields(f.Fields); err != nil {
				return err
			}
		}
	}
	return nil
}

// clean reports whether every detector finding in b contains a finding of
// a replacement.
func (p *protoEd) clean(b []byte) bool {
	if len(b) < 6 {
		return true
	}
	s := string(b)
	for _, sp := range p.st.e.det.find(s, nil) {
		hit := s[sp.start:sp.end]
		if !slices.ContainsFunc(p.allowed, func(a string) bool { return strings.Contains(hit, a) }) {
			return false
		}
	}
	return true
}
