// Package containers holds the tests that run the project's images in a real
// Docker engine: the mirrorline image (deploy/Dockerfile.scratch, built by
// deploy/local/images without pulling anything), the proxy in a container in
// front of a primary on the host, and the docker-compose stack with the local
// override (deploy/compose/local.yml). Without a Docker engine every test
// skips with a one-line reason; test/deps can install and start one.
package containers
