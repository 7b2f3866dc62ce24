package e2e

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// record is one consumed record: its Kafka timestamp and decoded exchange.
type record struct {
	ts time.Time
	ex *mlv1.Exchange
}

// readRecords reads n records of topic from its start within timeout.
func readRecords(t *testing.T, brokers []string, topic string, n int, timeout time.Duration) []record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d records within %s", topic, len(out), n, timeout)
		}
		fs.EachRecord(func(r *kgo.Record) {
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(r.Value, ex); err != nil {
				t.Fatalf("record %d does not decode: %v", r.Offset, err)
			}
			out = append(out, record{ts: r.Timestamp, ex: ex})
		})
	}
	return out
}

func importTestdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "collector", "pcapimport", "testdata", name)
}

// `mirrorline import` of the committed crafted capture into a real Kafka: the
// records carry the capture's original times, as record timestamps too, so a
// time-window replay of 2024-03-01 finds them.
func TestImportPcapIntoKafka(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	out, code := runML(t, env, "import", "--service", svc, "--port", "8080", "--collector-id", "e2e", importTestdata("http.pcap"))
	if code != 0 || !strings.Contains(out, "3 exchanges published, 7 skipped, 1 gaps, 0 errors") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), 3, 30*time.Second)
	byURL := map[string]record{}
	for _, r := range recs {
		byURL[r.ex.Request.Url] = r
		if r.ts.UnixNano()/1e6 != r.ex.CaptureTimeNs/1e6 {
			t.Errorf("%s: record timestamp %s, capture time %s", r.ex.Request.Url, r.ts.UTC(), time.Unix(0, r.ex.CaptureTimeNs).UTC())
		}
		if r.ex.Source != mlv1.Source_SOURCE_PCAP || r.ex.Collector != "e2e" {
			t.Errorf("record %v", r.ex)
		}
	}
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	want := map[string]time.Duration{ // capture offsets of the requests' first packets
		"/orders/42?full=1": 4 * time.Millisecond,
		"/orders":           30*time.Millisecond + 2*time.Second, // its head segment came second, 1 s apart
	}
	for url, off := range want {
		r, ok := byURL[url]
		if !ok {
			t.Fatalf("no record for %s", url)
		}
		if got := time.Unix(0, r.ex.CaptureTimeNs).UTC(); !got.Equal(start.Add(off)) {
			t.Errorf("%s captured at %s, want %s", url, got, start.Add(off))
		}
	}
	if r := byURL["/orders"]; string(r.ex.Response.Body) != "{\"id\":43}\n" || r.ex.Response.Status != 201 {
		t.Errorf("chunked response %d %q", r.ex.Response.Status, r.ex.Response.Body)
	}
	if r := byURL["/orders/43"]; !r.ex.Request.BodyTruncated || r.ex.Response.Status != 204 {
		t.Errorf("request with a capture gap: %v", r.ex)
	}
}

// A damaged file: the error names the file and the offset, exit 1, and what came
// before the damage is published all the same.
func TestImportBadFileKeepsWhatWasRead(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	good, err := os.ReadFile(importTestdata("sample.gor"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "broken.gor")
	if err := os.WriteFile(bad, append(good, []byte("9 nonsense\nGET / HTTP/1.1\r\n\r\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runML(t, env, "import", "--service", svc, bad)
	if code != 1 || !strings.Contains(out, "import "+bad+": offset 633: GoReplay payload 7 (line 43): bad GoReplay header: 2 fields") ||
		strings.Contains(out, "nonsense") || !strings.Contains(out, "3 exchanges published") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), 3, 30*time.Second)
	if recs[0].ts.UnixNano() != 1709287200000000000 || recs[0].ex.Source != mlv1.Source_SOURCE_GOREPLAY {
		t.Fatalf("first record at %s: %v", recs[0].ts, recs[0].ex)
	}
}

func TestImportUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"import", "--service", "s", "--brokers", "127.0.0.1:1"}, "at least one .pcap"},
		{[]string{"import", "--brokers", "127.0.0.1:1", "x.pcap"}, "missing setting: service (--service, service:, MIRRORLINE_SERVICE)"},
		{[]string{"import", "--service", "s", "x.pcap"}, "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"import", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "0", "x.pcap"}, "port: 0 is not a TCP port"},
	}
	for _, tc := range tests {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
