// Package pcapimport publishes recorded traffic: pcap and pcapng capture files
// (read with gopacket/pcapgo, no libpcap) through the same TCP reassembly and
// HTTP pairing as the VPC collector, and GoReplay .gor files (request and
// original response payloads paired by id). Every exchange keeps its original
// capture time, so time-window replay works on imported traffic. A file that
// does not parse stops with a *FormatError naming the file and the byte offset;
// what was read before it has been handed on.
package pcapimport
