// Package middleware runs a user's program between the replayer and the
// shadow, as GoReplay's middleware does, in any language: the program reads
// one JSON object per line on stdin (a request about to be sent, or, when
// asked, a response that came back) and writes one JSON object per line on
// stdout for each request: the request to send (possibly modified), or a
// drop. Every request has a time limit; a program that exits is restarted
// within a budget, after which the replay fails with the program's exit
// status. See docs/replay.md for the protocol.
package middleware
