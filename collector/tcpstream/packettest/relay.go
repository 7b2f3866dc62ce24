package packettest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Chunk is what one read of a relayed connection got: ToServer tells the
// direction, At when it was read.
type Chunk struct {
	ToServer bool
	Data     []byte
	At       time.Time
}

// Relay is a TCP relay on loopback that forwards every connection to a
// target and records the bytes of both directions with their times, to be
// turned into the packets a capture of the connection would hold.
type Relay struct {
	// Addr is where clients connect.
	Addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns [][]Chunk
	wg    sync.WaitGroup
}

// NewRelay starts a relay to target; it stops when the test ends.
func NewRelay(tb testing.TB, target string) *Relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Relay{Addr: ln.Addr().String(), ln: ln}
	r.wg.Add(1)
	go r.serve(target)
	tb.Cleanup(func() {
		_ = ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *Relay) serve(target string) {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		i := len(r.conns)
		r.conns = append(r.conns, nil)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(i, c, s, true)
		go r.pipe(i, s, c, false)
	}
}

// pipe copies from src to dst, recording each read before it is written (so
// an answer is always recorded after what it answers).
func (r *Relay) pipe(i int, src, dst net.Conn, toServer bool) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.conns[i] = append(r.conns[i], Chunk{ToServer: toServer, Data: append([]byte(nil), buf[:n]...), At: time.Now()}) // time taken under the lock: in order
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
			} else {
				_ = dst.Close()
				_ = src.Close()
			}
			return
		}
	}
}

// Close stops accepting and waits for the relayed connections to end (both
// of their sides closed).
func (r *Relay) Close() {
	_ = r.ln.Close()
	r.wg.Wait()
}

// Conns returns the chunks recorded per connection, in accept order.
func (r *Relay) Conns() [][]Chunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]Chunk, len(r.conns))
	for i, c := range r.conns {
		out[i] = append([]Chunk(nil), c...)
	}
	return out
}

// Timed is a frame and when it was captured.
type Timed struct {
	Frame []byte
	At    time.Time
}

// Packets returns the frames a capture of connection chunks between client
// and server (as "ip:port") would hold: handshake, the data in segments of at
// most mss bytes with the time each chunk was read, and both FINs.
func Packets(client, server string, chunks []Chunk, mss int) ([]Timed, error) {
	if len(chunks) == 0 {
		return nil, fmt.Errorf("packettest: no chunks")
	}
	c := NewConn(client, server)
	start := chunks[0].At.Add(-time.Millisecond)
	var out []Timed
	add := func(at time.Time, frames ...[]byte) {
		for _, f := range frames {
			out = append(out, Timed{f, at})
		}
	}
	add(start, c.Handshake()...)
	for _, ch := range chunks {
		if ch.ToServer {
			add(ch.At, c.ClientData(ch.Data, mss)...)
		} else {
			add(ch.At, c.ServerData(ch.Data, mss)...)
		}
	}
	end := chunks[len(chunks)-1].At.Add(time.Millisecond)
	add(end, c.ClientFIN(), c.ServerFIN(), c.ClientAck())
	return out, nil
}
