package grpcwire

import (
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Schema holds protobuf descriptors: the services and messages that let a
// captured gRPC message be read by field name.
type Schema struct {
	files *protoregistry.Files
}

// NewSchema returns a Schema of the files of set (they must resolve among
// themselves; well-known types are resolved from the linked-in registry).
func NewSchema(set *descriptorpb.FileDescriptorSet) (*Schema, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("descriptor set: %w", err)
	}
	return &Schema{files: files}, nil
}

// Method returns the input and output message types of the gRPC method at
// path ("/package.Service/Method"). ok is false when the schema does not
// know the method.
func (s *Schema) Method(path string) (in, out protoreflect.MessageDescriptor, ok bool) {
	if s == nil {
		return nil, nil, false
	}
	service, method, ok := SplitMethod(path)
	if !ok {
		return nil, nil, false
	}
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, nil, false
	}
	sd, isService := d.(protoreflect.ServiceDescriptor)
	if !isService {
		return nil, nil, false
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, nil, false
	}
	return md.Input(), md.Output(), true
}

// Files returns the schema's descriptors.
func (s *Schema) Files() *protoregistry.Files { return s.files }

// LoadSchemas reads the FileDescriptorSet files at paths (as written by
// `protoc --include_imports --descriptor_set_out=FILE` or `buf build -o
// FILE`) into one Schema; a file named by more than one set is taken once
// (the first). No path: nil.
func LoadSchemas(paths ...string) (*Schema, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var all descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read descriptor set: %w", err)
		}
		var set descriptorpb.FileDescriptorSet
		if err := proto.Unmarshal(b, &set); err != nil {
			return nil, fmt.Errorf("descriptor set %s: %w", p, err)
		}
		for _, f := range set.GetFile() {
			if !seen[f.GetName()] {
				seen[f.GetName()] = true
				all.File = append(all.File, f)
			}
		}
	}
	s, err := NewSchema(&all)
	if err != nil {
		return nil, fmt.Errorf("descriptor sets %s: %w", strings.Join(paths, ", "), err)
	}
	return s, nil
}
