// Package grpcwire owns gRPC's wire format as mirrorline sees it in captured
// traffic: the length-prefixed message framing of a call's body (Framer,
// AppendFrame), the message encodings named by grpc-encoding (Decompress,
// Compress), the protobuf wire format read without a schema (ParseMessage,
// AppendMessage), and schemas loaded from a FileDescriptorSet (Schema) to
// read messages by field name. Every input is hostile: parsers bound depth
// and sizes and return errors, never panic.
package grpcwire
