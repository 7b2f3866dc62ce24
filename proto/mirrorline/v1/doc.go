// Package mirrorlinev1 holds the record envelope of every mirrorline topic, the
// protobuf message mirrorline.v1.Exchange (generated from exchange.proto by
// `make proto`), and small hand-written helpers around it.
package mirrorlinev1
