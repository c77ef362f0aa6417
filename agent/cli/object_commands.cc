// loomctl apply, get and delete: objects through loomd's /v1/apply, /v1/services
// and /v1/endpoints.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/cli/cli.h"
#include "common/strings.h"

namespace loom::cli {
namespace {

struct ObjectArgs {
  std::vector<std::string> files;
  std::string ns;
  bool all_namespaces = false;
  bool show_secrets = false;  // get apps --show-secrets
  std::vector<std::string> positional;
};

// Takes -f/--filename, -n/--namespace and -A out of `args`.
absl::StatusOr<ObjectArgs> ParseObjectArgs(const std::vector<std::string>& args) {
  ObjectArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string_view flag) -> absl::StatusOr<std::string> {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(StrCat(flag, " needs a value"));
      return args[++i];
    };
    if (a == "-f" || a == "--filename") {
      absl::StatusOr<std::string> v = value(a);
      if (!v.ok()) return v.status();
      out.files.push_back(*v);
    } else if (a.rfind("--filename=", 0) == 0) {
      out.files.push_back(a.substr(11));
    } else if (a == "-n" || a == "--namespace") {
      absl::StatusOr<std::string> v = value(a);
      if (!v.ok()) return v.status();
      out.ns = *v;
    } else if (a.rfind("--namespace=", 0) == 0) {
      out.ns = a.substr(12);
    } else if (a == "-A" || a == "--all-namespaces") {
      out.all_namespaces = true;
    } else if (a == "--show-secrets") {
      out.show_secrets = true;
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      return absl::InvalidArgumentError(StrCat("unknown option ", a));
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::stringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCat(path, ": cannot be read"));
  ss << in.rdbuf();
  return ss.str();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "service/web" for messages; what is known of a document that may be malformed.
std::string DocumentName(const Json& doc) {
  std::string kind = "object";
  std::string name = "?";
  if (doc.is_object()) {
    if (doc.contains("kind") && doc["kind"].is_string()) kind = Lower(doc["kind"]);
    if (doc.contains("metadata") && doc["metadata"].is_object() &&
        doc["metadata"].contains("name") && doc["metadata"]["name"].is_string()) {
      name = doc["metadata"]["name"];
    }
  }
  return StrCat(kind, "/", name);
}

// Every non-empty document of every file, with where it came from.
struct Document {
  std::string where;  // "web.yaml: document 2 (service/web)"
  Json json;
};

absl::StatusOr<std::vector<Document>> ReadDocuments(const std::vector<std::string>& files) {
  std::vector<Document> docs;
  for (const std::string& file : files) {
    std::string label = file == "-" ? "stdin" : file;
    absl::StatusOr<std::string> text = ReadInput(file);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<Json>> parsed = ParseYamlDocuments(*text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(StrCat(label, ": ", ToStd(parsed.status().message())));
    }
    int n = 0;
    for (Json& doc : *parsed) {
      ++n;
      if (doc.is_null()) continue;
      docs.push_back({StrCat(label, ": document ", n, " (", DocumentName(doc), ")"), doc});
    }
  }
  return docs;
}

std::string Kind(std::string_view word) {
  std::string w = Lower(std::string(word));
  if (w == "service" || w == "services" || w == "svc") return "services";
  if (w == "endpoints" || w == "endpoint" || w == "ep") return "endpoints";
  if (w == "apps" || w == "app") return "apps";
  if (w == "pods" || w == "pod" || w == "po") return "pods";
  if (w == "nodes" || w == "node" || w == "no") return "nodes";
  if (w == "ingresses" || w == "ingress" || w == "ing") return "ingresses";
  return "";
}

std::string PortsText(const Json& spec) {
  std::string out;
  if (!spec.contains("ports") || !spec["ports"].is_array()) return "<none>";
  for (const Json& p : spec["ports"]) {
    if (!out.empty()) out += ",";
    out += StrCat(p.value("port", 0), "/", p.value("protocol", "TCP"));
  }
  return out.empty() ? "<none>" : out;
}

// get nodes / get pods: lists straight from the store, as tables or -o json|yaml.
int GetListCommand(Context& ctx, const ObjectArgs& a, const std::string& kind, OutputFormat format) {
  std::string target = StrCat("/v1/", kind);
  if (kind == "pods" && !a.ns.empty() && !a.all_namespaces) target += StrCat("/", a.ns);
  absl::StatusOr<Json> body = GetJson(ctx, target);
  if (!body.ok()) return 1;
  if (format != OutputFormat::kTable) {
    PrintStructured(ctx, *body, format);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  if (kind == "nodes") {
    rows.push_back({"NAME", "UNDERLAY-IP", "POD-CIDR", "CPUS", "MEMORY", "VERSION", "HEARTBEAT"});
    for (const Json& n : body->value("items", Json::array())) {
      Json cap = n.value("capacity", Json::object());
      rows.push_back({n.value("name", ""), n.value("underlayIP", ""), n.value("podCIDR", ""),
                      std::to_string(cap.value("cpus", 0)),
                      StrCat(cap.value("memoryBytes", int64_t{0}) >> 20, "Mi"), n.value("version", ""),
                      n.value("heartbeat", "")});
    }
  } else {
    rows.push_back({"NAMESPACE", "NAME", "READY", "NODE", "IP", "APP", "CONTAINER"});
    for (const Json& p : body->value("items", Json::array())) {
      Json meta = p.value("metadata", Json::object());
      Json labels = meta.value("labels", Json::object());
      std::string ip;
      for (const Json& i : p.value("ips", Json::array())) ip += (ip.empty() ? "" : ",") + i.get<std::string>();
      rows.push_back({meta.value("namespace", ""), meta.value("name", ""),
                      p.value("nodeLost", false) ? "false (node lost)" : p.value("ready", false) ? "true" : "false",
                      p.value("node", ""), ip,
                      labels.value("loom.io/app", ""), p.value("id", "").substr(0, 12)});
    }
  }
  std::fputs(FormatTable(rows).c_str(), ctx.out);
  return 0;
}

}  // namespace

std::string FormatAppsTable(const Json& items) {
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "NAME", "READY", "UP-TO-DATE", "IMAGE", "REVISION"}};
  for (const Json& a : items) {
    Json meta = a.value("metadata", Json::object());
    Json spec = a.value("spec", Json::object());
    Json st = a.value("status", Json::object());
    rows.push_back({meta.value("namespace", ""), meta.value("name", ""),
                    StrCat(st.value("readyReplicas", 0), "/", spec.value("replicas", 0)),
                    std::to_string(st.value("updatedReplicas", 0)), spec.value("image", ""),
                    std::to_string(st.value("revision", int64_t{0}))});
  }
  return FormatTable(rows);
}

std::string FormatServicesTable(const Json& items, int64_t now_unix) {
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-NAME", "PORTS", "AGE"}};
  for (const Json& s : items) {
    Json meta = s.value("metadata", Json::object());
    Json spec = s.value("spec", Json::object());
    Json status = s.value("status", Json::object());
    std::string type = spec.value("type", "ClusterIP");
    std::string ip = spec.value("clusterIP", "");
    if (ip.empty()) ip = "<none>";
    std::string age = "-";
    absl::Time created;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, status.value("createdAt", ""), &created, &err)) {
      age = FormatAge(std::max<int64_t>(0, now_unix - absl::ToUnixSeconds(created)));
    }
    std::string ext = spec.value("externalName", "");
    rows.push_back({meta.value("namespace", "default"), meta.value("name", ""), type, ip,
                    ext.empty() ? "<none>" : ext, PortsText(spec), age});
  }
  return FormatTable(rows);
}

std::string FormatEndpointsTable(const Json& items) {
  std::vector<std::vector<std::string>> rows = {{"NAMESPACE", "NAME", "ENDPOINTS", "NOT-READY"}};
  for (const Json& set : items) {
    std::vector<std::string> ready;
    int not_ready = 0;
    for (const Json& e : set.value("endpoints", Json::array())) {
      if (!e.value("ready", false)) {
        ++not_ready;
        continue;
      }
      std::string ep = e.value("ip", "");
      Json ports = e.value("ports", Json::array());
      if (!ports.empty() && ports[0].is_number_integer() && ports[0].get<int>() != 0) {
        ep += StrCat(":", ports[0].get<int>());
      }
      ready.push_back(ep);
    }
    std::string text;
    for (size_t i = 0; i < ready.size() && i < 3; ++i) text += (i ? "," : "") + ready[i];
    if (ready.size() > 3) text += StrCat(" + ", ready.size() - 3, " more");
    if (text.empty()) text = "<none>";
    rows.push_back({set.value("namespace", ""), set.value("name", ""), text,
                    std::to_string(not_ready)});
  }
  return FormatTable(rows);
}

int ApplyCommand(Context& ctx, const std::vector<std::string>& args) {
  absl::StatusOr<ObjectArgs> a = ParseObjectArgs(args);
  if (!a.ok()) return Fail(ctx, "apply", ToStd(a.status().message()), 2);
  if (a->files.empty()) return Fail(ctx, "apply", "-f FILE is required (- for stdin)", 2);
  if (!a->positional.empty()) {
    return Fail(ctx, "apply", StrCat("unexpected argument \"", a->positional[0], "\""), 2);
  }
  absl::StatusOr<std::vector<Document>> docs = ReadDocuments(a->files);
  if (!docs.ok()) return Fail(ctx, "apply", ToStd(docs.status().message()));
  if (docs->empty()) return Fail(ctx, "apply", "no objects in the input");
  for (Document& doc : *docs) {
    if (!a->ns.empty() && doc.json.is_object() && doc.json.contains("metadata") &&
        doc.json["metadata"].is_object() && !doc.json["metadata"].contains("namespace")) {
      doc.json["metadata"]["namespace"] = a->ns;
    }
    absl::StatusOr<Reply> reply = Request(ctx, "POST", "/v1/apply", doc.json.dump());
    if (!reply.ok()) {
      PrintUnreachable(ctx, reply.status());
      return 1;
    }
    if (reply->status != 200) return Fail(ctx, "apply", StrCat(doc.where, ": ", reply->ErrorText()));
    std::fprintf(ctx.out, "%s/%s %s\n", Lower(reply->body.value("kind", "object")).c_str(),
                 reply->body.value("name", "").c_str(), reply->body.value("result", "").c_str());
  }
  return 0;
}

int GetCommand(Context& ctx, const std::vector<std::string>& args) {
  std::vector<std::string> rest = args;
  absl::StatusOr<OutputFormat> format = TakeOutputFormat(rest);
  if (!format.ok()) return Fail(ctx, "get", ToStd(format.status().message()), 2);
  absl::StatusOr<ObjectArgs> a = ParseObjectArgs(rest);
  if (!a.ok()) return Fail(ctx, "get", ToStd(a.status().message()), 2);
  constexpr char kKinds[] = "nodes, apps, pods, services, endpoints or ingresses";
  if (a->positional.empty()) return Fail(ctx, "get", StrCat("which kind? ", kKinds), 2);
  std::string kind = Kind(a->positional[0]);
  if (kind.empty()) {
    return Fail(ctx, "get", StrCat("unknown kind \"", a->positional[0], "\": want ", kKinds), 2);
  }
  if (kind == "nodes" || kind == "pods") return GetListCommand(ctx, *a, kind, *format);
  if (a->positional.size() > 2) {
    return Fail(ctx, "get", StrCat("unexpected argument \"", a->positional[2], "\""), 2);
  }
  std::string target = StrCat("/v1/", kind);
  if (kind == "apps" && a->show_secrets) target += "?secrets=1";
  bool one = a->positional.size() == 2;
  std::string query;
  if (size_t q = target.find('?'); q != std::string::npos) {
    query = target.substr(q);
    target.resize(q);
  }
  if (one) {
    target += StrCat("/", a->ns.empty() ? "default" : a->ns, "/", a->positional[1]);
  } else if (!a->ns.empty() && !a->all_namespaces) {
    target += StrCat("/", a->ns);
  }
  target += query;
  absl::StatusOr<Json> body = GetJson(ctx, target);
  if (!body.ok()) return 1;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ctx, *body, *format);
    return 0;
  }
  Json items = one ? Json::array({*body}) : body->value("items", Json::array());
  std::string table = kind == "services"    ? FormatServicesTable(items, absl::ToUnixSeconds(absl::Now()))
                      : kind == "ingresses" ? FormatIngressesTable(items, absl::ToUnixSeconds(absl::Now()))
                      : kind == "apps"      ? FormatAppsTable(items)
                                            : FormatEndpointsTable(items);
  std::fputs(table.c_str(), ctx.out);
  return 0;
}

int DeleteCommand(Context& ctx, const std::vector<std::string>& args) {
  absl::StatusOr<ObjectArgs> a = ParseObjectArgs(args);
  if (!a.ok()) return Fail(ctx, "delete", ToStd(a.status().message()), 2);
  // (kind, namespace, name, where) of each object to delete.
  struct Target {
    std::string kind, ns, name, where;
  };
  std::vector<Target> targets;
  if (!a->files.empty()) {
    if (!a->positional.empty()) {
      return Fail(ctx, "delete", "give either -f FILE or KIND NAME, not both", 2);
    }
    absl::StatusOr<std::vector<Document>> docs = ReadDocuments(a->files);
    if (!docs.ok()) return Fail(ctx, "delete", ToStd(docs.status().message()));
    for (const Document& d : *docs) {
      std::string doc_kind = d.json.is_object() ? d.json.value("kind", "") : "";
      if (doc_kind != "Service" && doc_kind != "App" && doc_kind != "Ingress") {
        return Fail(ctx, "delete", StrCat(d.where, ": kind: only Service, App and Ingress can be deleted here"));
      }
      Json meta = d.json.value("metadata", Json::object());
      if (!meta.is_object() || !meta.contains("name") || !meta["name"].is_string()) {
        return Fail(ctx, "delete", StrCat(d.where, ": metadata.name: required"));
      }
      std::string ns = meta.value("namespace", a->ns.empty() ? "default" : a->ns);
      targets.push_back({doc_kind == "App" ? "apps" : doc_kind == "Ingress" ? "ingresses" : "services", ns,
                         meta["name"], d.where});
    }
  } else {
    std::string kind = a->positional.empty() ? "" : Kind(a->positional[0]);
    if (a->positional.size() < 2 || (kind != "services" && kind != "apps" && kind != "ingresses")) {
      return Fail(ctx, "delete", "usage: delete service|app|ingress NAME [-n NS] | delete -f FILE", 2);
    }
    for (size_t i = 1; i < a->positional.size(); ++i) {
      targets.push_back({kind, a->ns.empty() ? "default" : a->ns, a->positional[i], ""});
    }
  }
  int code = 0;
  for (const Target& t : targets) {
    absl::StatusOr<Reply> reply =
        Request(ctx, "DELETE", StrCat("/v1/", t.kind, "/", t.ns, "/", t.name));
    if (!reply.ok()) {
      PrintUnreachable(ctx, reply.status());
      return 1;
    }
    if (reply->status != 200) {
      Fail(ctx, "delete", t.where.empty() ? reply->ErrorText() : StrCat(t.where, ": ", reply->ErrorText()));
      code = 1;
      continue;
    }
    std::fprintf(ctx.out, "%s/%s deleted\n", t.kind.substr(0, t.kind.size() - (t.kind == "ingresses" ? 2 : 1)).c_str(),
                 t.name.c_str());
  }
  return code;
}

}  // namespace loom::cli
