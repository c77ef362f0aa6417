#include "dns/zone_answer.h"

#include <algorithm>

namespace loom::dns {
namespace {

constexpr size_t kOptSize = 11;
constexpr int kMaxChase = 8;

bool WriteSoa(const ClusterZone& zone, const Name& apex, MessageWriter* w) {
  return w->AddSoa(Section::kAuthority, apex, zone.ttl(), zone.soa_mname(), zone.soa_rname(),
                   zone.serial(), 7200, 1800, 86400, zone.ttl());
}

// Adds the records of `records` that answer `qtype`, owned by `owner`. Returns how
// many were added; sets `truncated` when one did not fit.
int AddRecords(const ClusterZone& zone, const ZoneRecords& records, const Name& owner,
               uint16_t qtype, MessageWriter* w, bool* truncated) {
  int added = 0;
  uint32_t ttl = zone.ttl();
  auto add = [&](bool ok) {
    if (ok) {
      ++added;
    } else {
      *truncated = true;
    }
    return ok;
  };
  bool any = qtype == type::kAny;
  if (any || qtype == type::kA) {
    for (uint32_t i = 0; i < records.a_count; ++i) {
      if (!add(w->AddA(Section::kAnswer, owner, ttl, records.address(i)))) return added;
    }
  }
  const ZoneExtra& entry = *records.extra;
  if (any || qtype == type::kSrv) {
    for (const SrvRecord& s : entry.srv) {
      if (!add(w->AddSrv(Section::kAnswer, owner, ttl, s.priority, s.weight, s.port, *s.target))) {
        return added;
      }
    }
  }
  if ((any || qtype == type::kPtr) && entry.ptr) {
    if (!add(w->AddNameRecord(Section::kAnswer, owner, type::kPtr, ttl, *entry.ptr))) return added;
  }
  if ((any || qtype == type::kTxt) && entry.has_txt) {
    if (!add(w->AddTxt(Section::kAnswer, owner, ttl, entry.txt))) return added;
  }
  return added;
}

}  // namespace

size_t ResponseCapacity(bool tcp, size_t out_capacity, const std::optional<Edns>& edns,
                        uint16_t max_udp_size) {
  if (tcp) return std::min<size_t>(out_capacity, 65535);
  uint16_t client = edns ? std::max<uint16_t>(edns->udp_size, kMinUdpSize) : kMinUdpSize;
  return std::max<size_t>(std::min<size_t>({out_capacity, client, max_udp_size}), kMinUdpSize);
}

void BeginResponse(const Query& query, MessageWriter* w) {
  Header h;
  h.id = query.header.id;
  h.set_qr(true);
  h.set_opcode(query.header.opcode());
  h.set_rd(query.header.rd());
  h.set_cd(query.header.cd());
  h.set_ra(true);
  w->SetHeader(h);
  if (query.edns) w->set_capacity(w->remaining() + w->size() - kOptSize);
  if (query.has_question) {
    w->AddQuestion(query.question.name, query.question.qtype, query.question.qclass);
  }
}

void EndResponse(const Query& query, uint16_t udp_size, MessageWriter* w) {
  if (!query.edns) return;
  w->set_capacity(w->size() + kOptSize);
  w->AddOpt(udp_size);
}

void WriteErrorResponse(const Query& query, bool has_question, Rcode rcode, uint16_t udp_size,
                        MessageWriter* w) {
  Query q = query;
  q.has_question = has_question && query.has_question;
  BeginResponse(q, w);
  w->set_rcode(rcode);
  EndResponse(q, udp_size, w);
}

ZoneAnswer AnswerFromZone(const ClusterZone& zone, const Query& query, MessageWriter* w) {
  ZoneAnswer result;
  const Name& qname = query.question.name;
  if (!zone.Covers(qname)) {
    result.outcome = ZoneOutcome::kNotAuthoritative;
    return result;
  }
  Header h = w->header();
  h.set_aa(true);
  w->SetHeader(h);
  const Name& apex = qname.IsSubdomainOf(zone.origin()) ? zone.origin() : zone.reverse_origin();
  uint16_t qtype = query.question.qtype;

  std::optional<ZoneRecords> entry = zone.Find(qname);
  if (!entry) {
    result.rcode = Rcode::kNxDomain;
    w->set_rcode(Rcode::kNxDomain);
    WriteSoa(zone, apex, w);
    return result;
  }

  int answers = 0;
  const Name* owner = &qname;
  // CNAMEs (ExternalName services) are followed inside the zone; a target outside
  // it is handed back to the caller.
  for (int hop = 0; entry && entry->extra->cname && qtype != type::kCname; ++hop) {
    if (hop >= kMaxChase) {
      result.rcode = Rcode::kServFail;
      w->set_rcode(Rcode::kServFail);
      return result;
    }
    if (!w->AddNameRecord(Section::kAnswer, *owner, type::kCname, zone.ttl(),
                          *entry->extra->cname)) {
      result.truncated = true;
      w->set_tc(true);
      return result;
    }
    ++answers;
    owner = &*entry->extra->cname;
    if (!zone.Covers(*owner)) {
      result.outcome = ZoneOutcome::kExternalCname;
      result.external_target = *owner;
      return result;
    }
    entry = zone.Find(*owner);
    if (!entry) {
      result.rcode = Rcode::kNxDomain;
      w->set_rcode(Rcode::kNxDomain);
      WriteSoa(zone, apex, w);
      return result;
    }
  }
  if (qtype == type::kCname && entry->extra->cname) {
    if (w->AddNameRecord(Section::kAnswer, *owner, type::kCname, zone.ttl(),
                         *entry->extra->cname)) {
      ++answers;
    } else {
      result.truncated = true;
    }
  } else if (qtype == type::kSoa && owner->Equals(apex)) {
    if (w->AddSoa(Section::kAnswer, apex, zone.ttl(), zone.soa_mname(), zone.soa_rname(),
                  zone.serial(), 7200, 1800, 86400, zone.ttl())) {
      ++answers;
    }
  } else {
    answers += AddRecords(zone, *entry, *owner, qtype, w, &result.truncated);
  }
  if (result.truncated) {
    w->set_tc(true);
    return result;
  }
  if (answers == 0) {
    WriteSoa(zone, apex, w);  // NODATA
    return result;
  }
  // SRV targets' addresses go in the additional section when they fit.
  if (qtype == type::kSrv) {
    for (const SrvRecord& s : entry->extra->srv) {
      std::optional<ZoneRecords> target = zone.Find(*s.target);
      if (!target) continue;
      for (uint32_t i = 0; i < target->a_count; ++i) {
        if (!w->AddA(Section::kAdditional, *s.target, zone.ttl(), target->address(i))) {
          return result;
        }
      }
    }
  }
  return result;
}

}  // namespace loom::dns
