// libFuzzer target for the DNS decoders: whatever the bytes, decoding never reads
// out of bounds, never loops, and a message that decodes re-encodes into one that
// decodes to the same records.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dns/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom::dns;
  Query q;
  DecodeError err;
  if (DecodeQuery(data, size, &q, &err)) {
    // A decoded question name is valid and prints.
    (void)q.question.name.ToText();
  }
  auto m = DecodeMessage(data, size);
  if (!m.ok()) return 0;
  std::vector<uint8_t> buf(65535);
  MessageWriter w(buf.data(), buf.size());
  w.SetHeader(m->header);
  for (const Question& question : m->questions) w.AddQuestion(question.name, question.qtype, question.qclass);
  size_t written = 0;
  for (const ResourceRecord& rr : m->answers) written += w.AddRecord(Section::kAnswer, rr) ? 1 : 0;
  auto again = DecodeMessage(buf.data(), w.size());
  if (!again.ok()) std::abort();
  if (again->answers.size() != written) std::abort();
  for (size_t i = 0; i < written; ++i) {
    if (!again->answers[i].name.Equals(m->answers[i].name) ||
        again->answers[i].rdata != m->answers[i].rdata) {
      std::abort();
    }
  }
  return 0;
}
