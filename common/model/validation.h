// Kubernetes-style name and label validation, shared by every object kind and by
// the CNI plugin (labels from CNI_ARGS). Each returns OK or an InvalidArgument
// error naming `field` and saying what the rule is.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom::model {

// RFC 1123 label: at most 63 of [a-z0-9-], alphanumeric at both ends (namespaces,
// pod names as hostnames).
absl::Status ValidateDns1123Label(std::string_view value, std::string_view field);
// RFC 1035 label: as RFC 1123 but starting with a letter (service names).
absl::Status ValidateDns1035Label(std::string_view value, std::string_view field);
// RFC 1123 subdomain: dot-separated RFC 1123 labels, at most 253 characters.
absl::Status ValidateDns1123Subdomain(std::string_view value, std::string_view field);
// IANA service name (named ports): at most 15 of [a-z0-9-], at least one letter, no
// '-' at either end or twice in a row.
absl::Status ValidatePortName(std::string_view value, std::string_view field);
// Label key: optional DNS-subdomain prefix and '/', then a name of at most 63 of
// [A-Za-z0-9-_.], alphanumeric at both ends. Value: empty, or the same name rule.
absl::Status ValidateLabelKey(std::string_view key, std::string_view field);
absl::Status ValidateLabelValue(std::string_view value, std::string_view field);
absl::Status ValidateLabels(const std::map<std::string, std::string>& labels,
                            std::string_view field);

// "app=web,tier=front" (the LOOM_LABELS form) into a validated map; empty items
// are skipped, a key given twice is an error.
absl::StatusOr<std::map<std::string, std::string>> ParseLabelList(std::string_view text,
                                                                  std::string_view field);

// True when every key=value of `selector` is in `labels`. An empty selector
// selects nothing (a Service without a selector has no derived endpoints).
bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels);

}  // namespace loom::model
