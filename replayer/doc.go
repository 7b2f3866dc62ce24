// Package replayer turns records of mirror.clean.<service> back into HTTP
// requests against a shadow deployment and publishes the shadow's responses to
// mirror.shadow.<service>. It owns request reconstruction (X-Shadow-Request and X-Mirrorline-Id,
// hop-by-hop removal, Host rewriting; gRPC calls over HTTP/2 with their
// messages paced as captured, see grpc.go), the live replayer (a handler of the
// stage runtime, which owns its polling, offsets and rebalances), window
// replays on a schedule, and the replayer metrics. Its constructors take one
// option type, Option.
package replayer
