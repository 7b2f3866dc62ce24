package replayer

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Window warm-up: see Warmer.
const (
	// WarmAhead is how long before a record due after an idle wait a window
	// replay opens the connections its burst needs.
	WarmAhead = 50 * time.Millisecond
	// WarmSpan is the part of the schedule, from that record on, whose
	// records each get a connection ready (at most Concurrency).
	WarmSpan = 10 * time.Millisecond
)

// SpareTTL is how long a connection dialled ahead (Sender.Warm) waits for a
// request before it is closed unused: a server may close an idle connection,
// and a request on a connection the transport has never used is not retried.
const SpareTTL = 5 * time.Second

// Warmer is a Requester that can open connections ahead of a burst: a window
// replay calls Warm shortly before records are due after an idle wait.
type Warmer interface {
	// Warm makes conns connections to the target open (dialling the
	// missing ones) before ctx ends; it returns how many it dialled.
	Warm(ctx context.Context, conns int) (int, error)
}

// connPool is a Sender's dialer: it counts the connections open to the
// target and hands the transport connections dialled ahead (spares) before
// it dials new ones.
type connPool struct {
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	addr string

	mu     sync.Mutex
	open   int // connections not closed: spares and the transport's
	spare  []spareConn
	dialed int // by the transport, when it found no spare (tests read it)
}

type spareConn struct {
	conn   net.Conn
	dialed time.Time
}

// countedConn decrements the pool's count once when closed.
type countedConn struct {
	net.Conn
	pool *connPool
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.pool.mu.Lock()
		c.pool.open--
		c.pool.mu.Unlock()
	})
	return c.Conn.Close()
}

// DialContext is the transport's dialer: a fresh spare when there is one,
// else a new connection (only to the target: see dialOnly).
func (p *connPool) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if c := p.takeSpare(network, address); c != nil {
		return c, nil
	}
	c, err := p.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.open++
	p.dialed++
	p.mu.Unlock()
	return &countedConn{Conn: c, pool: p}, nil
}

// takeSpare returns a spare dialled less than SpareTTL ago, closing the
// older ones, or nil.
func (p *connPool) takeSpare(network, address string) net.Conn {
	if network != "tcp" || address != p.addr {
		return nil // dialOnly refuses it: let the dial say why
	}
	var stale []net.Conn
	defer func() {
		for _, c := range stale {
			_ = c.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.spare) > 0 {
		s := p.spare[len(p.spare)-1]
		p.spare = p.spare[:len(p.spare)-1]
		if time.Since(s.dialed) < SpareTTL {
			return s.conn
		}
		stale = append(stale, s.conn)
	}
	return nil
}

// dropStale closes the spares dialled SpareTTL or more ago.
func (p *connPool) dropStale() {
	p.mu.Lock()
	var stale []net.Conn
	keep := p.spare[:0]
	for _, s := range p.spare {
		if time.Since(s.dialed) >= SpareTTL {
			stale = append(stale, s.conn)
		} else {
			keep = append(keep, s)
		}
	}
	p.spare = keep
	p.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
}

// warm dials until n connections are open, in parallel, before ctx ends.
func (p *connPool) warm(ctx context.Context, n int) (int, error) {
	p.mu.Lock()
	need := n - p.open
	if need > 0 {
		p.open += need // reserved: concurrent warms do not dial twice
	}
	p.mu.Unlock()
	if need <= 0 {
		return 0, nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		got   int
	)
	for range need {
		wg.Go(func() {
			c, err := p.dial(ctx, "tcp", p.addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				p.mu.Lock()
				p.open--
				p.mu.Unlock()
				return
			}
			got++
			p.mu.Lock()
			p.spare = append(p.spare, spareConn{conn: &countedConn{Conn: c, pool: p}, dialed: time.Now()})
			p.mu.Unlock()
		})
	}
	wg.Wait()
	time.AfterFunc(SpareTTL, p.dropStale) // spares never taken do not stay open
	if first != nil {
		return got, fmt.Errorf("warm connections to %s: %w", p.addr, first)
	}
	return got, nil
}

// Open reports the connections open to the target (spares included).
func (s *Sender) Open() int {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	return s.conns.open
}

// Warm dials connections to the target until conns are open (idle, busy or
// dialled ahead), so that a burst due shortly does not wait for connections;
// see Warmer. A connection dialled ahead and not used within SpareTTL is
// closed. For an https target only TCP is ready ahead: the TLS handshake is
// made on first use.
func (s *Sender) Warm(ctx context.Context, conns int) (int, error) {
	return s.conns.warm(ctx, conns)
}

// Warm warms the default target's connections and those of the routes with
// targets of their own, conns each.
func (rt *Router) Warm(ctx context.Context, conns int) (int, error) {
	seen := map[*Sender]bool{}
	total := 0
	var first error
	for _, e := range append([]*routeEntry{rt.def}, rt.routes...) {
		if e == nil || e.to == nil || e.to.sender == nil || seen[e.to.sender] {
			continue
		}
		seen[e.to.sender] = true
		n, err := e.to.sender.Warm(ctx, conns)
		total += n
		if err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// lookahead is a window replay's source with records read ahead of the
// schedule, to see how many are due in a burst before it starts.
type lookahead struct {
	src  Source
	buf  []Item
	err  error // the source's error after buf
	done bool
}

// next returns the next record (read ahead or from the source).
func (l *lookahead) next(ctx context.Context) (Item, error) {
	if len(l.buf) > 0 {
		it := l.buf[0]
		l.buf[0] = Item{}
		l.buf = l.buf[1:]
		return it, nil
	}
	if l.done {
		return Item{}, l.err
	}
	return l.src.Next(ctx)
}

// burst counts the records due before end, read ahead up to limit records
// (due says when, from the record's position after the current one); a
// source that has nothing by ctx's end stops the count.
func (l *lookahead) burst(ctx context.Context, limit int, end time.Time, due func(k int, it Item) time.Time) int {
	n := 0
	for k := 0; n < limit; k++ {
		if k >= len(l.buf) {
			if l.done {
				break
			}
			it, err := l.src.Next(ctx)
			if err != nil {
				if ctx.Err() == nil { // the source's end or error: kept for next
					l.done, l.err = true, err
				}
				break
			}
			l.buf = append(l.buf, it)
		}
		if due(k, l.buf[k]).After(end) {
			break
		}
		n++
	}
	return n
}
