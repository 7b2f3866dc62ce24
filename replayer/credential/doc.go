// Package credential owns the credentials a replayer gives a shadow in place
// of the ones the redactor removed: a header set from a file (re-read when it
// changes) or an environment variable (Header, Injector), and JSON Web Tokens
// re-signed with a test key (JWT, Signer): the redactor's unsign action keeps
// a token's header and claims and drops its signature, and the Signer signs
// the same claims again (HS256, RS256 or ES256) with a fresh exp, so the
// shadow sees the captured identity with a token valid in its environment.
// Credential values are never logged and never written to a record.
package credential
