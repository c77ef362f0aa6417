// Answers a decoded query from a cluster zone snapshot into a MessageWriter,
// without allocating: the response is written straight into the caller's buffer.
#pragma once

#include <optional>

#include "dns/cluster_zone.h"
#include "dns/wire.h"

namespace loom::dns {

enum class ZoneOutcome {
  kAnswered,         // the response is complete in the writer
  kNotAuthoritative, // the name is outside the zone: forward it
  kExternalCname,    // answered with a CNAME whose target is outside: the caller
                     // resolves `external_target` upstream and appends its records
};

struct ZoneAnswer {
  ZoneOutcome outcome = ZoneOutcome::kAnswered;
  Rcode rcode = Rcode::kNoError;
  Name external_target;
  bool truncated = false;
};

// How many bytes a response may take: over TCP `out_capacity` (at most 65535), over
// UDP the client's EDNS0 size (512 without EDNS0) capped by the server's
// `max_udp_size` and `out_capacity`, never below 512.
size_t ResponseCapacity(bool tcp, size_t out_capacity, const std::optional<Edns>& edns,
                        uint16_t max_udp_size);

// Starts a response to `query`: header (id, opcode, RD copied; QR, RA set), and the
// question. `capacity` is how much the client takes (already bounded by EDNS);
// room for an OPT record is kept when the query had one.
void BeginResponse(const Query& query, MessageWriter* writer);
// Finishes a response: the OPT record when the query had one.
void EndResponse(const Query& query, uint16_t udp_size, MessageWriter* writer);

// Writes a whole response for an error rcode (FORMERR, NOTIMP, REFUSED, SERVFAIL).
void WriteErrorResponse(const Query& query, bool has_question, Rcode rcode, uint16_t udp_size,
                        MessageWriter* writer);

// Answers from the zone. On kNotAuthoritative nothing but the header and question
// has been written.
ZoneAnswer AnswerFromZone(const ClusterZone& zone, const Query& query, MessageWriter* writer);

}  // namespace loom::dns
