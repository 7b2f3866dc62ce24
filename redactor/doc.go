// Package redactor is the redactor stage (mirror.raw.S -> mirror.clean.S):
// the PII redaction engine, and the Processor that runs it on Kafka.
// Engine.Redact scrubs one mlv1.Exchange in place and reports which rules
// fired. The Processor is a stage.Transformer: the stage runtime owns the
// consume-transform-produce loop and its transactions; the Processor says
// what a raw record becomes (its clean record, its quarantine record, or
// nothing) and counts the outcomes of committed transactions.
//
// What is scrubbed:
//   - the request URL: userinfo, path segments, query parameters (by name
//     with query_params rules, and by the detectors);
//   - request and response headers: header rules (drop, mask, hash, fake),
//     Referer/Location query strings, and the detectors over other values;
//   - request and response bodies by Content-Type: JSON and NDJSON (field
//     rules by path with wildcards, detectors over string values, keys and
//     long integers), application/x-www-form-urlencoded and multipart/form-data
//     (field rules by name, detectors), any text (detectors), binary (the
//     binary policy). Compressed bodies (gzip, deflate, br, zstd) are decoded
//     first and re-encoded with the same codings;
//   - the client address and the response error text (detectors).
//
// JSON is edited in place: bytes outside the redacted values are copied
// verbatim, so key order, number formatting and white space survive.
//
// Detectors: payment cards (Luhn), emails, phone numbers, US SSNs, IBANs
// (mod 97), JWTs, bearer/basic credentials and IPv4 addresses. Actions: remove,
// mask ("****"), keyed hash ("hmac:" + 16 hex digits of HMAC-SHA256) and
// format-preserving fakes derived from the HMAC.
//
// Redact fails closed: when a body cannot be parsed as its declared type the
// error wraps ErrUnparseable, both bodies are removed from the exchange, and
// the error text never carries payload bytes. The engine never logs.
//
// docs/redaction.md is the configuration reference.
package redactor
