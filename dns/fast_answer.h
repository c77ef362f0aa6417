// The query path for what a cluster DNS server mostly sees: A and AAAA queries for
// service names (hits, NODATA and NXDOMAIN), answered straight from the query's
// bytes without decoding it into a Query or running the general MessageWriter with
// its compression search. It writes byte for byte what the general path
// (DecodeQuery, BeginResponse, AnswerFromZone, EndResponse) writes for the same
// query (a unit test compares them), and declines everything else.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dns/cluster_zone.h"
#include "dns/wire.h"

namespace loom::dns {

struct FastAnswer {
  size_t size = 0;  // 0: declined, take the general path
  uint16_t qtype = 0;
  Rcode rcode = Rcode::kNoError;
};

// Answers `query` (its `size` bytes) into `out` when it is a standard query with one
// question of class IN and type A or AAAA for a name <...>.<service>.<namespace>.svc.
// <zone>, no records but an EDNS0 (version 0) OPT, whose answer holds only
// addresses, NODATA or NXDOMAIN and fits the client's limit (ResponseCapacity).
// `max_udp_size` is the server's limit, also announced in the answer's OPT record.
FastAnswer AnswerFast(const ClusterZone& zone, const uint8_t* query, size_t size, uint8_t* out,
                      size_t out_capacity, uint16_t max_udp_size, bool tcp);

// For a batch of queries: the lookup AnswerFast will make for `query` (none when it
// will decline before it), with the index slot it reads prefetched. Calling this
// for every query of a batch, then PrefetchRecord() on each result, then
// AnswerFast, overlaps the batch's cache misses instead of taking them one by one.
PendingLookup PrefetchAnswer(const ClusterZone& zone, const uint8_t* query, size_t size);

}  // namespace loom::dns
