// Package httpstream turns the two byte streams of one TCP connection into HTTP/1.x
// exchanges. It does not care where the bytes come from (reassembled packets from
// VPC Traffic Mirroring or a pcap file, socket reads seen by eBPF, ...): a caller
// creates a Conn per connection, feeds it client->server and server->client bytes
// with their timestamps as they arrive, reports missing bytes (capture gaps) and
// the ends of the streams, and receives one Exchange per request, paired with its
// response, in request order.
//
// The parser handles keep-alive and pipelining (responses are paired with requests
// first in, first out), Content-Length and chunked bodies, responses delimited by
// the end of the connection, interim 1xx responses (100-continue), responses without
// a body (HEAD, 1xx, 204, 304), protocol switches (101, CONNECT: the rest of the
// connection is ignored), bodies longer than the body limit (kept truncated, with a
// flag) and gaps: bytes known to be missing inside a body are counted and flagged;
// a gap it cannot place resynchronises the stream on the next line that starts a
// request or response. A Conn never retains the slices it is fed, holds at most a
// bounded amount of memory (heads, body limits, pending pipelined requests) and is
// not safe for concurrent use.
package httpstream
