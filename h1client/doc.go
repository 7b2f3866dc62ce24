// Package h1client owns the HTTP/1.1 client transport that the proxy uses to
// reach its primary and the replayer uses to reach a shadow: each round trip
// is written and answered on the caller's own goroutine over pooled
// keep-alive connections, and whatever it does not handle (TLS, HTTP/2,
// upgrades, large or streamed bodies) goes to a fallback http.RoundTripper.
package h1client
