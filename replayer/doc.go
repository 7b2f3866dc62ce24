// Package replayer turns records of mirror.clean.<service> back into HTTP
// requests against a shadow deployment and publishes the shadow's responses to
// mirror.shadow.<service>. It owns request reconstruction (X-Shadow-Request and X-Mirrorline-Id,
// hop-by-hop removal, Host rewriting), the live consumer-group shadowing loop,
// and the replayer metrics.
package replayer
