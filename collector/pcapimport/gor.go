package pcapimport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// GoReplay's file format: payloads separated by gorSeparator, each starting with
// a header line "TYPE ID TIMESTAMP_NS [LATENCY_NS]" where TYPE is 1 (request),
// 2 (original response) or 3 (replayed response).
var gorSeparator = []byte("\n🐵🙈🙉\n")

// Limits of a GoReplay import.
const (
	maxGorPayload = 64 << 20
	maxGorPending = 100_000
)

// gorState pairs GoReplay requests with their responses.
type gorState struct {
	pending    map[string]*gorRequest
	order      []string // ids in arrival order, for evicting the oldest
	exchanges  atomic.Uint64
	unanswered atomic.Uint64
	skipped    atomic.Uint64
}

type gorRequest struct {
	conn *httpstream.Conn
	id   string
	ts   time.Time
	got  *httpstream.Exchange
}

// splitGor is a bufio.SplitFunc cutting at the separator.
func splitGor(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.Index(data, gorSeparator); i >= 0 {
		return i + len(gorSeparator), data[:i], nil
	}
	if atEOF && len(data) > 0 {
		// The last payload may lack its separator (or end in a bare "\n").
		return len(data), bytes.TrimSuffix(data, []byte("\n")), nil
	}
	return 0, nil, nil
}

// readGor reads a GoReplay file; offsets are counted from the payloads (the
// scanner reads ahead).
func (im *Importer) readGor(ctx context.Context, br *bufio.Reader) error {
	g := &im.gor
	if g.pending == nil {
		g.pending = map[string]*gorRequest{}
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxGorPayload+len(gorSeparator))
	sc.Split(splitGor)
	var at int64    // offset of the current payload
	n, line := 0, 1 // number of the current payload, line of its header
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		block := sc.Bytes()
		start, startLine := at, line
		at += int64(len(block)) + int64(len(gorSeparator))
		line += bytes.Count(block, []byte("\n")) + bytes.Count(gorSeparator, []byte("\n"))
		n++
		if len(bytes.TrimSpace(block)) == 0 {
			continue
		}
		if err := im.gorPayload(block); err != nil {
			// Errors say where and what was expected, never which bytes
			// were found: they are captured data.
			return &FormatError{Offset: start, Err: fmt.Errorf("GoReplay payload %d (line %d): %w", n, startLine, err)}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("payload longer than %d bytes or missing separator: %w", maxGorPayload, err)
		}
		return &FormatError{Offset: at, Err: fmt.Errorf("GoReplay payload %d (line %d): %w", n+1, line, err)}
	}
	return nil
}

// gorHeader parses "TYPE ID TIMESTAMP [LATENCY]". Its errors name what is
// wrong without quoting the line.
func gorHeader(line []byte) (typ byte, id string, ts time.Time, latency int64, err error) {
	const want = `want "TYPE ID TIMESTAMP [LATENCY]"`
	fields := bytes.Fields(line)
	if len(fields) < 3 {
		return 0, "", time.Time{}, 0, fmt.Errorf("bad GoReplay header: %d fields, %s", len(fields), want)
	}
	if len(fields[0]) != 1 || fields[0][0] < '1' || fields[0][0] > '3' {
		return 0, "", time.Time{}, 0, fmt.Errorf("bad GoReplay header: TYPE (field 1, %d bytes) is not 1, 2 or 3; %s", len(fields[0]), want)
	}
	ns, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil || ns <= 0 {
		return 0, "", time.Time{}, 0, fmt.Errorf("bad GoReplay header: TIMESTAMP (field 3, %d bytes) is not a positive whole number of nanoseconds since the epoch; %s", len(fields[2]), want)
	}
	if len(fields) > 3 {
		latency, _ = strconv.ParseInt(string(fields[3]), 10, 64)
	}
	return fields[0][0], string(fields[1]), time.Unix(0, ns), latency, nil
}

func (im *Importer) gorPayload(block []byte) error {
	nl := bytes.IndexByte(block, '\n')
	if nl < 0 {
		return errors.New(`no header line: want "TYPE ID TIMESTAMP [LATENCY]" and a newline before the HTTP message`)
	}
	typ, id, ts, latency, err := gorHeader(block[:nl])
	if err != nil {
		return err
	}
	payload := block[nl+1:]
	g := &im.gor
	switch typ {
	case '1':
		if old := g.pending[id]; old != nil {
			im.finishGor(old, 0) // a repeated id: the first request got no response
		}
		if len(g.pending) >= maxGorPending {
			im.evictGor()
		}
		req := &gorRequest{id: id, ts: ts}
		req.conn = httpstream.New(func(e *httpstream.Exchange) {
			if req.got == nil {
				req.got = e
			}
		}, httpstream.WithBodyLimit(im.bodyLimit), httpstream.WithMaxHeaderBytes(1<<20))
		req.conn.Feed(httpstream.ClientToServer, payload, ts)
		req.conn.End(httpstream.ClientToServer, ts)
		if req.conn.Pending() == 0 && req.got == nil {
			g.skipped.Add(1) // not an HTTP/1.x request
			return nil
		}
		g.pending[id] = req
		g.order = append(g.order, id)
	case '2':
		req := g.pending[id]
		if req == nil {
			g.skipped.Add(1)
			return nil
		}
		req.conn.Feed(httpstream.ServerToClient, payload, ts)
		im.finishGor(req, latency)
	default: // '3': a replayed response, not the original
		g.skipped.Add(1)
	}
	return nil
}

// finishGor publishes req (with its response when one was fed).
func (im *Importer) finishGor(req *gorRequest, latency int64) {
	g := &im.gor
	delete(g.pending, req.id)
	req.conn.Close(req.ts)
	e := req.got
	if e == nil {
		return
	}
	rec := e.Record()
	rec.ConnectionId = "gor-" + req.id
	rec.Source = mlv1.Source_SOURCE_GOREPLAY
	rec.Collector = im.collectorID
	rec.CaptureTimeNs = req.ts.UnixNano()
	if rec.Response != nil && latency > 0 {
		rec.Response.LatencyNs = latency
	}
	if rec.Response == nil {
		g.unanswered.Add(1)
	}
	g.exchanges.Add(1)
	if err := im.pub.Emit(rec); err != nil {
		im.log.Warn("publish exchange", "id", req.id, "error", err)
	}
}

// evictGor publishes the oldest pending request without a response.
func (im *Importer) evictGor() {
	g := &im.gor
	for len(g.order) > 0 {
		id := g.order[0]
		g.order = g.order[1:]
		if req := g.pending[id]; req != nil {
			im.finishGor(req, 0)
			return
		}
	}
}

// flushGor publishes every request still waiting, in arrival order.
func (im *Importer) flushGor() {
	g := &im.gor
	for len(g.pending) > 0 && len(g.order) > 0 {
		im.evictGor()
	}
	g.order = nil
}
