package pcapimport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Format is a recognised file format.
type Format string

// Formats.
const (
	FormatPcap     Format = "pcap"
	FormatPcapNG   Format = "pcapng"
	FormatGoReplay Format = "gor"
)

// FormatError is a file that does not parse: Offset is the byte offset of the
// record that failed.
type FormatError struct {
	File   string
	Offset int64
	Err    error
}

// Error returns "import FILE: offset N: reason".
func (e *FormatError) Error() string {
	return fmt.Sprintf("import %s: offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// ErrUnknownFormat: the file is neither pcap, pcapng nor GoReplay.
var ErrUnknownFormat = errors.New("unrecognised format (want pcap, pcapng or a GoReplay .gor file)")

// Summary counts what an Importer did.
type Summary struct {
	Files     atomic.Uint64
	Packets   atomic.Uint64
	Exchanges atomic.Uint64
	// Skipped counts packets not used (other ports, not TCP, malformed, ...) and
	// GoReplay payloads not imported (replayed responses, responses to unknown
	// requests).
	Skipped atomic.Uint64
	// Unanswered counts exchanges published without a response.
	Unanswered atomic.Uint64
	Gaps       atomic.Uint64
	// H2Dropped counts HTTP/2 connections not parsed, or not to their end:
	// captured after their preface (HPACK state unknown) or malformed.
	H2Dropped atomic.Uint64
	// Errors counts files that failed.
	Errors atomic.Uint64
}

// Option configures an Importer.
type Option func(*Importer)

// WithPorts imports only TCP connections to these server ports from captures.
func WithPorts(ports ...uint16) Option {
	return func(im *Importer) { im.ports = append(im.ports, ports...) }
}

// WithBodyLimit sets how many body bytes are kept per message (default 1 MiB).
func WithBodyLimit(n int64) Option { return func(im *Importer) { im.bodyLimit = n } }

// WithCollectorID names the collector in records (default: host name).
func WithCollectorID(id string) Option { return func(im *Importer) { im.collectorID = id } }

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) Option { return func(im *Importer) { im.log = l } }

// Importer reads capture and GoReplay files and hands their exchanges to a
// publisher. TCP streams may continue from one capture file into the next (as
// with rotated captures); Close flushes what is still open.
type Importer struct {
	pub         tcpstream.Publisher
	ports       []uint16
	bodyLimit   int64
	collectorID string
	log         hclog.Logger
	tracker     *tcpstream.Tracker
	tstats      tcpstream.Stats
	dec         *tcpstream.Decoder
	lastTS      time.Time
	lastFlush   time.Time
	sum         Summary
	gor         gorState
}

// New returns an Importer publishing to pub.
func New(pub tcpstream.Publisher, opts ...Option) *Importer {
	host, _ := os.Hostname()
	im := &Importer{pub: pub, bodyLimit: httpstream.DefaultBodyLimit, collectorID: host, log: hclog.NewNullLogger(), dec: tcpstream.NewDecoder()}
	for _, o := range opts {
		o(im)
	}
	im.tracker = tcpstream.NewTracker(pub,
		tcpstream.WithPorts(im.ports...),
		tcpstream.WithSource(mlv1.Source_SOURCE_PCAP),
		tcpstream.WithConnPrefix("pcap-"),
		tcpstream.WithCollectorID(im.collectorID),
		tcpstream.WithStats(&im.tstats),
		tcpstream.WithLogger(im.log),
		tcpstream.WithHTTPOptions(httpstream.WithBodyLimit(im.bodyLimit)),
	)
	return im
}

// Summary returns the counters; capture counters are complete after Close.
func (im *Importer) Summary() *Summary {
	s := &im.tstats
	im.sum.Exchanges.Store(s.Exchanges.Load() + im.gor.exchanges.Load())
	im.sum.Unanswered.Store(s.HTTP.Unanswered.Load() + im.gor.unanswered.Load())
	im.sum.Gaps.Store(s.Gaps.Load())
	var h2 uint64
	for i := range s.H2.Dropped {
		h2 += s.H2.Dropped[i].Load()
	}
	im.sum.H2Dropped.Store(h2)
	// Every packet not accepted nor a retransmit was skipped; used is loaded
	// before the total, so the difference cannot underflow while counting.
	used := s.Packets[tcpstream.ResultAccepted].Load() + s.Packets[tcpstream.ResultRetransmit].Load()
	im.sum.Skipped.Store(s.PacketsTotal() - used + im.gor.skipped.Load())
	return &im.sum
}

// ImportFile imports one file, recognising its format by its first bytes.
func (im *Importer) ImportFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		im.sum.Errors.Add(1)
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	return im.Import(ctx, path, f)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Import imports the file named name from r.
func (im *Importer) Import(ctx context.Context, name string, r io.Reader) error {
	im.sum.Files.Add(1)
	cr := &countingReader{r: r}
	// pcapgo wraps its input in a bufio.Reader unless it already is one of at
	// least the default size: sharing ours lets us compute offsets. Under it,
	// pcapng block framing is checked as the bytes pass.
	br := bufio.NewReaderSize(&sniffFramer{r: cr}, 1<<16)
	offset := func() int64 { return cr.n - int64(br.Buffered()) }
	magic, _ := br.Peek(4)
	var err error
	switch format := detect(magic); format {
	case FormatPcap:
		err = im.readPcap(ctx, br, offset)
	case FormatPcapNG:
		err = im.readPcapNG(ctx, br, offset)
	case FormatGoReplay:
		err = im.readGor(ctx, br)
	default:
		err = &FormatError{Offset: 0, Err: ErrUnknownFormat}
	}
	if err != nil {
		im.sum.Errors.Add(1)
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.File = name
			return fe
		}
		return fmt.Errorf("import %s: %w", name, err)
	}
	return nil
}

// detect tells the format from the first (up to) 4 bytes of a file.
func detect(magic []byte) Format {
	switch m := string(magic); {
	case strings.HasPrefix(m, "\x1f\x8b"):
		return FormatPcap // gzip-compressed pcap, which pcapgo reads
	case len(m) < 4:
		return ""
	case m == "\x0a\x0d\x0d\x0a":
		return FormatPcapNG
	case m == "\xd4\xc3\xb2\xa1", m == "\xa1\xb2\xc3\xd4", m == "\x4d\x3c\xb2\xa1", m == "\xa1\xb2\x3c\x4d":
		return FormatPcap
	case (m[0] == '1' || m[0] == '2' || m[0] == '3') && m[1] == ' ':
		return FormatGoReplay
	}
	return ""
}

type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

func (im *Importer) readPcap(ctx context.Context, br *bufio.Reader, offset func() int64) error {
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return &FormatError{Offset: 0, Err: fmt.Errorf("pcap header: %w", err)}
	}
	if sl := r.Snaplen(); sl == 0 || sl > MaxRecordBytes {
		// pcapgo allocates what a record header declares, up to the snap length.
		r.SetSnaplen(MaxRecordBytes)
	}
	first, err := tcpstream.FirstLayer(r.LinkType())
	if err != nil {
		return &FormatError{Offset: 20, Err: err}
	}
	return im.readPackets(ctx, r, offset, func(gopacket.CaptureInfo) (gopacket.LayerType, error) { return first, nil })
}

func (im *Importer) readPcapNG(ctx context.Context, br *bufio.Reader, offset func() int64) error {
	r, err := newNgReader(br)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return fe
		}
		return &FormatError{Offset: 0, Err: fmt.Errorf("pcapng section header: %w", err)}
	}
	return im.readPackets(ctx, r, offset, func(ci gopacket.CaptureInfo) (gopacket.LayerType, error) {
		lt := r.LinkType()
		if len(ci.AncillaryData) > 0 {
			if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				lt = l
			}
		}
		return tcpstream.FirstLayer(lt)
	})
}

// readPacket reads the next packet, turning a panic of the reader into an error:
// pcapgo trusts fields of the file (it divides by a timestamp resolution an
// interface block declares).
func readPacket(src packetSource) (data []byte, ci gopacket.CaptureInfo, err error) {
	defer recoverMalformed(&err)
	return src.ReadPacketData()
}

// newNgReader is pcapgo.NewNgReader with its panics turned into errors.
func newNgReader(br *bufio.Reader) (r *pcapgo.NgReader, err error) {
	defer recoverMalformed(&err)
	return pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
}

// recoverMalformed, deferred, turns a panic of a reader into *err; the other
// results stay zero as the panicking call returned nothing.
func recoverMalformed(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("malformed capture: %v", p)
	}
}

// flushEvery is how often (in capture time) idle streams and stalled gaps are
// flushed while reading a capture.
const flushEvery = time.Second

func (im *Importer) readPackets(ctx context.Context, src packetSource, offset func() int64, first func(gopacket.CaptureInfo) (gopacket.LayerType, error)) error {
	var seg tcpstream.Segment
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		at := offset()
		data, ci, err := readPacket(src)
		if errors.Is(err, io.EOF) && len(data) == 0 {
			return nil
		}
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				return fe // the framing check knows the offset of the bad block
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("file ends inside a packet record: %w", err)
			}
			return &FormatError{Offset: at, Err: err}
		}
		im.sum.Packets.Add(1)
		lt, err := first(ci)
		if err != nil {
			im.tstats.Count(tcpstream.ResultNotTCP)
			continue
		}
		if derr := im.dec.Decode(lt, data, &seg); derr != nil {
			im.tstats.CountDecodeError(derr)
			continue
		}
		ts := ci.Timestamp
		if ts.After(im.lastTS) {
			im.lastTS = ts
		}
		im.tracker.Handle(&seg, ts)
		if im.lastTS.Sub(im.lastFlush) >= flushEvery {
			im.tracker.Flush(im.lastTS)
			im.lastFlush = im.lastTS
		}
	}
}

// Close flushes every open stream and GoReplay request still waiting for its
// response.
func (im *Importer) Close() {
	im.tracker.Close(im.lastTS)
	im.flushGor()
}
