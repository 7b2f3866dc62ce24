package redactor

import (
	"bytes"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// The loop decodes each record without a copy (mlv1.UnmarshalExchangeRecycled):
// the exchange's strings, bodies and gRPC message data are the fetched
// record's bytes, and the record after it follows in the same buffer. Redact
// must replace what it changes, never write into it. Every corpus case (PII
// and clean), the bench payloads, gzip, form, multipart and gRPC exchanges go
// through Redact decoded that way, one after another into one exchange, each
// from a buffer with the next record after it; no byte of the buffer may
// change. FuzzRedact and FuzzRedactProtobuf check the same on their inputs.
func TestRedactNeverWritesIntoItsRecord(t *testing.T) {
	var seq []*mlv1.Exchange
	for _, dir := range []string{"pii", "clean"} {
		files, err := filepath.Glob(filepath.Join("testdata", "corpus", dir, "*.txt"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s corpus: %v", dir, err)
		}
		for _, f := range files {
			for _, c := range loadCorpus(t, f) {
				seq = append(seq, c.exchange(t))
			}
		}
	}
	gz := benchExchange(benchPaymentJSON)
	gz.Request.Body = gzipBytes(t, []byte(benchPaymentJSON))
	gz.Request.Headers = append(gz.Request.Headers, &mlv1.Header{Name: "Content-Encoding", Value: "gzip"})
	form := jsonExchange("form", []byte("email=ada%40example.com&card=4111+1111+1111+1111&note=hi"))
	form.Request.Headers = hdr("Content-Type", "application/x-www-form-urlencoded")
	multipart := jsonExchange("multipart", []byte("--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nada@example.com\r\n--b--\r\n"))
	multipart.Request.Headers = hdr("Content-Type", "multipart/form-data; boundary=b")
	order := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, mustMarshal(t, demoOrder()))
	order.Response.Trailers = hdr("grpc-status", "0", "grpc-message", "sent to pia@example.com")
	seq = append(seq, benchExchange(benchPaymentJSON), benchExchange(benchCleanJSON), gz, form, multipart, order)

	engines := map[string]*Engine{"default": newEngine(t, Config{}), "schema": schemaEngine(t, Config{}, ordersSchema(t))}
	for name, e := range engines {
		t.Run(name, func(t *testing.T) {
			ex := &mlv1.Exchange{}
			for i, want := range seq {
				raw, err := proto.Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				buf := append(raw, "the next record"...)
				raw = buf[:len(raw)]
				before := bytes.Clone(buf)
				if err := mlv1.UnmarshalExchangeRecycled(raw, ex); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if _, err := e.Redact(ex); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if _, err := mlv1.MarshalExchange(ex); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if !bytes.Equal(buf, before) {
					t.Fatalf("record %d (%s): Redact wrote into the record it was decoded from", i, recordName(want))
				}
			}
		})
	}
}

// recordName names a test record without its payload.
func recordName(ex *mlv1.Exchange) string {
	if ex.GetId() != "" {
		return ex.GetId()
	}
	for _, h := range ex.GetRequest().GetHeaders() {
		if h.Name == "Content-Type" {
			return "body " + h.Value
		}
	}
	return "header, URL or address case"
}
