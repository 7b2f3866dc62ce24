// Package h2stream turns the two byte streams of one HTTP/2 connection (h2c
// seen from its client preface, as the packet collectors reassemble it) into
// exchanges: one mirrorline.v1.Exchange per stream, gRPC calls with their
// messages per direction.
//
// A Conn is fed the client->server and server->client bytes with their
// capture timestamps, like collector/httpstream's Conn. It checks the client
// preface, cuts both directions into frames (DATA and header block fragments
// are streamed, never buffered whole; control frames are read into a few
// bytes), decodes the header blocks of each direction with its own HPACK
// decoder (golang.org/x/net/http2/hpack; dynamic table size bounded, header
// lists bounded), and follows every stream: request and response heads from
// HEADERS + CONTINUATION, bodies from DATA (padding removed) within the body
// limit, trailers from a last HEADERS with END_STREAM. For gRPC
// (content-type application/grpc) the bodies are cut into messages with
// grpcwire.Framer, each with its offset from the stream's first HEADERS.
//
// A stream is published when both sides ended it, in the order streams end;
// sequence numbers follow the order streams started. A stream reset
// (RST_STREAM) before its response ended is published cut: the sides not
// finished are flagged truncated (and incomplete), and the response carries
// the reset's error code as its error (status 0 when no response head was
// seen). A reset after the response ended changes nothing (a server may reset
// a request it no longer needs once it answered). Streams still open when the
// connection ends are published cut the same way.
//
// Every byte is hostile: frame sizes, header lists, the HPACK dynamic table
// and the number of open streams are bounded; a protocol violation drops the
// connection (its open streams are not published) and is counted by reason
// in Stats, a violation confined to one stream skips that stream. A Conn
// never panics on its input, never retains the slices it is fed and is not
// safe for concurrent use.
package h2stream
