package replayer

import "sync"

// workers runs a window replay's sends on goroutines that outlive one send.
// A goroutine started for each record begins with a small stack and grows it
// (a copy each time) on the way into the HTTP client, on the send's own
// critical path; a worker's stack has grown once. The caller bounds the
// sends in flight (Concurrency): at most max workers are started, and a send
// goes to an idle worker when one waits, to a new worker while fewer than
// max exist, else to the first worker that comes back.
type workers struct {
	jobs    chan func()
	wg      sync.WaitGroup
	started int
	max     int
}

func newWorkers(n int) *workers {
	return &workers{jobs: make(chan func()), max: max(n, 1)}
}

// run runs f on a worker. It is called from one goroutine only.
func (p *workers) run(f func()) {
	select {
	case p.jobs <- f:
		return
	default:
	}
	if p.started < p.max {
		p.started++
		p.wg.Go(func() {
			f()
			for f := range p.jobs {
				f()
			}
		})
		return
	}
	p.jobs <- f
}

// wait waits for every send given to run, and ends the workers.
func (p *workers) wait() {
	close(p.jobs)
	p.wg.Wait()
}
