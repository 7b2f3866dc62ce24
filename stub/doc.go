// Package stub is the shadow's downstream endpoint: it answers the outbound
// calls a shadow makes (to a card gateway, a payments API, any HTTP
// dependency) with the responses the primary got for the same calls, so
// nothing the shadow does reaches a real dependency.
//
// It owns:
//
//   - the index of the primary's recorded egress calls (KIND_EGRESS records
//     of mirror.clean.S, read committed from a lookback and followed live),
//     keyed by their parent exchange id and trace id, bounded in records and
//     bytes, oldest evicted first (Index, Follower);
//   - matching one of the shadow's calls to a recorded call of the same
//     parent: same dependency host, method and path, then the most similar
//     body, each recorded call used at most once (Index.Match, Similarity);
//   - serving: as the shadow's forward proxy (HTTP_PROXY, absolute-form
//     requests) or as a dependency's address (origin-form), answering the
//     recorded response byte for byte, a configured answer on a miss, or
//     passing through to allowlisted hosts only (Server);
//   - publishing every answered call as a KIND_EGRESS record with its
//     StubAnswer on mirror.shadow.S, off the answer's path (Publisher);
//   - its metrics, mirrorline_stub_*.
//
// The correlation comes from the inbound proxy: it puts the primary's
// exchange id in the W3C tracestate entry "mirrorline", the replayer sends
// the same tracestate to the shadow, and the shadow propagates it to its
// outbound calls. See docs/isolation.md.
package stub
