package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
)

// redactInProcess is the fallback when the redactor's Go benchmark cannot run:
// the default engine on the same 1 KB payments request, one goroutine, with
// GOMAXPROCS=1 so that garbage collection is paid on the same core.
func redactInProcess(ctx context.Context, d time.Duration) (recordsPerSec, nsPerOp float64, err error) {
	e, err := redactor.NewEngine(redactor.Config{})
	if err != nil {
		return 0, 0, err
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	mk := func() *mlv1.Exchange {
		h := func(kv ...string) []*mlv1.Header {
			var hs []*mlv1.Header
			for i := 0; i+1 < len(kv); i += 2 {
				hs = append(hs, &mlv1.Header{Name: kv[i], Value: kv[i+1]})
			}
			return hs
		}
		return &mlv1.Exchange{
			Id: "0190d9a0-0000-7000-8000-000000000001", Service: "payments",
			Request: &mlv1.Request{
				Method: "POST", Url: "/v1/payments?expand=customer&idempotency=ik_5521&locale=de-CH",
				Host: "api.example.com", Proto: "HTTP/1.1", Scheme: "https",
				Headers: h("Content-Type", "application/json", "Content-Length", strconv.Itoa(len(benchproc.PaymentJSON)),
					"Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Accept", "application/json"),
				Body: []byte(benchproc.PaymentJSON), BodySize: int64(len(benchproc.PaymentJSON)), RemoteAddr: "10.0.3.17:41234",
			},
			Response: &mlv1.Response{Status: 201, Headers: h("Content-Type", "application/json"), Body: []byte(`{"id":"pay_01HQ","ok":true}`)},
		}
	}
	const batch = 256
	pool := make([]*mlv1.Exchange, batch)
	var n int64
	var busy time.Duration
	for busy < d && ctx.Err() == nil {
		for i := range pool {
			pool[i] = mk()
		}
		t0 := time.Now()
		for _, ex := range pool {
			if _, err := e.Redact(ex); err != nil {
				return 0, 0, err
			}
		}
		busy += time.Since(t0)
		n += batch
	}
	if n == 0 {
		return 0, 0, ctx.Err()
	}
	return float64(n) / busy.Seconds(), float64(busy.Nanoseconds()) / float64(n), nil
}

// loopRecords is how many records the redactor's EOS loop benchmark moves
// from the raw to the clean topic.
const loopRecords = 50000

// redactorLoop measures the redactor's whole exactly-once loop against the
// harness's Kafka (BenchmarkRedactEOSLoop): records per CPU-second of the
// process (records/s per core), CPU-µs per record and wall records/s; and
// beside it, in the same go test run, its floor: the same loop with a
// transformer that encodes each record again without redacting it
// (BenchmarkEOSLoopPassThrough).
func (h *harness) redactorLoop(ctx context.Context) error {
	h.logf("redactor: BenchmarkRedactEOSLoop and BenchmarkEOSLoopPassThrough, %d records each through Kafka transactions", loopRecords)
	bctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	const pattern = "^(BenchmarkRedactEOSLoop|BenchmarkEOSLoopPassThrough)$"
	cmd := exec.CommandContext(bctx, "go", "test", "-run", "^$", "-bench", pattern,
		"-benchtime", strconv.Itoa(loopRecords)+"x", "-count", "1", "-benchmem", "./redactor/")
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+h.brokers)
	out, err := cmd.CombinedOutput()
	m := benchMetrics(string(out), "BenchmarkRedactEOSLoop")
	if err != nil || m["records/cpu-s"] == 0 {
		return fmt.Errorf("BenchmarkRedactEOSLoop: %v: %s", err, benchproc.LastLine(string(out)))
	}
	floor := benchMetrics(string(out), "BenchmarkEOSLoopPassThrough")
	h.rep.redactorLoop(m, floor, fmt.Sprintf("KAFKA_BROKERS=<the harness's broker> go test -run '^$' -bench '%s' -benchtime %dx -benchmem ./redactor/", pattern, loopRecords))
	return nil
}

// benchMetrics reads the metrics (unit -> value) of the first result line
// of the Go benchmark name.
func benchMetrics(out, name string) map[string]float64 {
	m := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for i := 3; i < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i-1], 64); err == nil {
				m[f[i]] = v
			}
		}
		break
	}
	return m
}
