// Package mirrorlinev1 holds the record envelope of every mirrorline topic, the
// protobuf message mirrorline.v1.Exchange (generated from exchange.proto by
// `make proto`: protoc-gen-go, and protoc-gen-go-vtproto for the reflection
// free codec UnmarshalExchange and MarshalExchange use), and small
// hand-written helpers around it.
package mirrorlinev1
