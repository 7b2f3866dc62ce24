package grpcwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	rpbalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// DefaultReflectTimeout bounds Reflect when its context has no deadline.
const DefaultReflectTimeout = 10 * time.Second

// maxReflectFiles bounds the files Reflect accepts from a server.
const maxReflectFiles = 10000

// Reflect reads the schemas of every service the gRPC server at addr offers
// through server reflection (grpc.reflection.v1, else v1alpha): each
// service's file with its dependencies. addr is host:port (h2c, no TLS), or
// https://host:port for TLS verified with the system roots (tlsConfig, when
// not nil, replaces them). Without a deadline in ctx it gives up after
// DefaultReflectTimeout.
func Reflect(ctx context.Context, addr string, tlsConfig *tls.Config) (*Schema, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultReflectTimeout)
		defer cancel()
	}
	target, creds, err := reflectTarget(addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("grpc reflection %s: %w", target, err)
	}
	defer cc.Close()
	set, err := reflectFiles(ctx, cc, true)
	if status.Code(err) == codes.Unimplemented {
		set, err = reflectFiles(ctx, cc, false)
	}
	if err != nil {
		return nil, fmt.Errorf("grpc reflection %s: %w", target, err)
	}
	s, err := NewSchema(set)
	if err != nil {
		return nil, fmt.Errorf("grpc reflection %s: %w", target, err)
	}
	return s, nil
}

// reflectTarget splits addr into a dial target and its credentials.
func reflectTarget(addr string, tlsConfig *tls.Config) (string, credentials.TransportCredentials, error) {
	switch {
	case strings.HasPrefix(addr, "https://"):
		host := strings.TrimSuffix(strings.TrimPrefix(addr, "https://"), "/")
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return "passthrough:///" + host, credentials.NewTLS(tlsConfig), checkHostPort(addr, host)
	case strings.HasPrefix(addr, "http://"):
		host := strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
		return "passthrough:///" + host, insecure.NewCredentials(), checkHostPort(addr, host)
	}
	return "passthrough:///" + addr, insecure.NewCredentials(), checkHostPort(addr, addr)
}

func checkHostPort(addr, host string) error {
	if host == "" || strings.ContainsAny(host, "/?#@ ") || !strings.Contains(host, ":") {
		return fmt.Errorf("grpc reflection: %q is not host:port or https://host:port", printable(addr))
	}
	return nil
}

// reflectStream is one reflection stream, v1 or v1alpha (the two have the
// same messages, so v1alpha's are converted through their encoding).
type reflectStream struct {
	v1    rpb.ServerReflection_ServerReflectionInfoClient
	alpha rpbalpha.ServerReflection_ServerReflectionInfoClient
}

func (s *reflectStream) ask(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	if s.v1 != nil {
		if err := s.v1.Send(req); err != nil {
			return nil, s.recvErr(err)
		}
		return s.v1.Recv()
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 v1alpha is the fallback for servers that lack v1
	var areq rpbalpha.ServerReflectionRequest
	if err := proto.Unmarshal(b, &areq); err != nil {
		return nil, err
	}
	if err := s.alpha.Send(&areq); err != nil {
		return nil, s.recvErr(err)
	}
	aresp, err := s.alpha.Recv()
	if err != nil {
		return nil, err
	}
	if b, err = proto.Marshal(aresp); err != nil {
		return nil, err
	}
	var resp rpb.ServerReflectionResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// recvErr returns the stream's status when Send failed with io.EOF (the
// server ended the stream).
func (s *reflectStream) recvErr(err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	var rerr error
	if s.v1 != nil {
		_, rerr = s.v1.Recv()
	} else {
		_, rerr = s.alpha.Recv()
	}
	if rerr != nil {
		return rerr
	}
	return err
}

// reflectFiles lists the server's services and collects the files defining
// them and their dependencies.
func reflectFiles(ctx context.Context, cc *grpc.ClientConn, v1 bool) (*descriptorpb.FileDescriptorSet, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var s reflectStream
	var err error
	if v1 {
		s.v1, err = rpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	} else {
		s.alpha, err = rpbalpha.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	}
	if err != nil {
		return nil, err
	}
	resp, err := s.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{ListServices: ""}})
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, fmt.Errorf("list services: %s", printable(e.GetErrorMessage()))
	}
	files := map[string]*descriptorpb.FileDescriptorProto{}
	var order []string
	add := func(resp *rpb.ServerReflectionResponse) error {
		if e := resp.GetErrorResponse(); e != nil {
			return fmt.Errorf("code %d: %s", e.GetErrorCode(), printable(e.GetErrorMessage()))
		}
		for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(b, &fd); err != nil {
				return fmt.Errorf("file descriptor: %w", err)
			}
			if _, seen := files[fd.GetName()]; !seen {
				if len(files) >= maxReflectFiles {
					return fmt.Errorf("more than %d files", maxReflectFiles)
				}
				files[fd.GetName()] = &fd
				order = append(order, fd.GetName())
			}
		}
		return nil
	}
	for _, svc := range resp.GetListServicesResponse().GetService() {
		r, err := s.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc.GetName()}})
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", printable(svc.GetName()), err)
		}
		if err := add(r); err != nil {
			return nil, fmt.Errorf("service %s: %w", printable(svc.GetName()), err)
		}
	}
	// Dependencies the server did not send with the files (it may leave out
	// those it sent before on the stream; ask for any still missing).
	for i := 0; i < len(order); i++ {
		for _, dep := range files[order[i]].GetDependency() {
			if _, ok := files[dep]; ok {
				continue
			}
			r, err := s.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}})
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", printable(dep), err)
			}
			if err := add(r); err != nil {
				return nil, fmt.Errorf("file %s: %w", printable(dep), err)
			}
			if _, ok := files[dep]; !ok {
				return nil, fmt.Errorf("file %s: not sent by the server", printable(dep))
			}
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, name := range order {
		set.File = append(set.File, files[name])
	}
	return set, nil
}

// MergeSchemas returns one Schema of the files of schemas (nil ones
// skipped); a file in more than one is taken from the first. None: nil.
func MergeSchemas(schemas ...*Schema) (*Schema, error) {
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	n := 0
	for _, s := range schemas {
		if s == nil {
			continue
		}
		n++
		s.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
			if !seen[fd.Path()] {
				seen[fd.Path()] = true
				set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
			}
			return true
		})
	}
	if n == 0 {
		return nil, nil
	}
	return NewSchema(&set)
}
