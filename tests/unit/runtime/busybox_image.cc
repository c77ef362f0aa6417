#include "tests/unit/runtime/busybox_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/archive.h"
#include "runtime/fs_util.h"
#include "tests/testing/command.h"

namespace loom::runtime::testing {

using loom::testing::RunChecked;

absl::Status MakeBusyboxRootfs(const std::string& dir) {
  for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "root"}) {
    RETURN_IF_ERROR(MakeDirs(StrCat(dir, "/", d)));
  }
  ::chmod(StrCat(dir, "/tmp").c_str(), 01777);
  RETURN_IF_ERROR(RunChecked({"cp", kHostBusybox, StrCat(dir, "/bin/busybox")}).status());
  ASSIGN_OR_RETURN(std::string applets, RunChecked({kHostBusybox, "--list"}));
  for (absl::string_view a : absl::StrSplit(applets, '\n', absl::SkipEmpty())) {
    if (a == "busybox") continue;
    std::string link = StrCat(dir, "/bin/", a);
    if (::symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, StrCat("symlink ", link));
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(dir, "/etc/passwd"),
                                  "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"));
  return WriteFileAtomic(StrCat(dir, "/etc/group"), "root:x:0:\nnogroup:x:65534:\n");
}

absl::Status PackTar(const std::string& dir, const std::string& out, bool gzip) {
  return RunChecked({"tar", "-C", dir, gzip ? "-czf" : "-cf", out, "."}).status();
}

namespace {

// Moves `file` into blobs/sha256/<hex> and returns its descriptor.
absl::StatusOr<Json> AddBlob(const std::string& layout, const std::string& file,
                             const std::string& media_type) {
  ASSIGN_OR_RETURN(std::string digest, Sha256File(file));
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return ErrnoToStatus(errno, file);
  std::string blob = StrCat(layout, "/blobs/sha256/", digest.substr(7));
  if (::rename(file.c_str(), blob.c_str()) != 0) return ErrnoToStatus(errno, blob);
  return Json{{"mediaType", media_type}, {"digest", digest}, {"size", st.st_size}};
}

absl::StatusOr<Json> AddJsonBlob(const std::string& layout, const Json& j,
                                 const std::string& media_type) {
  std::string tmp = StrCat(layout, "/tmp.json");
  RETURN_IF_ERROR(WriteFileAtomic(tmp, j.dump()));
  return AddBlob(layout, tmp, media_type);
}

}  // namespace

absl::Status MakeOciLayout(const std::string& rootfs, const std::string& out,
                           const std::string& ref) {
  const std::string work = StrCat(out, ".work");
  RETURN_IF_ERROR(MakeDirs(StrCat(out, "/blobs/sha256")));
  RETURN_IF_ERROR(MakeDirs(work));
  // Layer 1: the rootfs and two files the next layer hides.
  const std::string l1 = StrCat(work, "/l1");
  RETURN_IF_ERROR(RunChecked({"cp", "-a", rootfs, l1}).status());
  RETURN_IF_ERROR(MakeDirs(StrCat(l1, "/opaque")));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l1, "/etc/removed-by-layer2"), "lower\n"));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l1, "/opaque/lower-file"), "lower\n"));
  // Layer 2: whiteouts, and new files.
  const std::string l2 = StrCat(work, "/l2");
  RETURN_IF_ERROR(MakeDirs(StrCat(l2, "/etc")));
  RETURN_IF_ERROR(MakeDirs(StrCat(l2, "/opaque")));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l2, "/etc/.wh.removed-by-layer2"), ""));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l2, "/opaque/.wh..wh..opq"), ""));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l2, "/opaque/upper-file"), "upper\n"));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(l2, "/etc/added-by-layer2"), "added\n"));
  // diff_ids are the digests of the uncompressed layers (containerd checks them).
  RETURN_IF_ERROR(PackTar(l1, StrCat(work, "/l1.tar"), false));
  ASSIGN_OR_RETURN(std::string diff1, Sha256File(StrCat(work, "/l1.tar")));
  RETURN_IF_ERROR(RunChecked({"gzip", "-n", StrCat(work, "/l1.tar")}).status());
  RETURN_IF_ERROR(PackTar(l2, StrCat(work, "/l2.tar"), false));
  ASSIGN_OR_RETURN(std::string diff2, Sha256File(StrCat(work, "/l2.tar")));
  ASSIGN_OR_RETURN(Json layer1, AddBlob(out, StrCat(work, "/l1.tar.gz"),
                                        "application/vnd.oci.image.layer.v1.tar+gzip"));
  ASSIGN_OR_RETURN(Json layer2, AddBlob(out, StrCat(work, "/l2.tar"),
                                        "application/vnd.oci.image.layer.v1.tar"));
  Json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config",
                  {{"Env", {"PATH=/bin", "FROM_IMAGE=oci"}},
                   {"Cmd", {"sh", "-c", "echo from-image-cmd"}},
                   {"WorkingDir", "/tmp"}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {diff1, diff2}}}}};
  ASSIGN_OR_RETURN(Json config_desc,
                   AddJsonBlob(out, config, "application/vnd.oci.image.config.v1+json"));
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config", config_desc},
                   {"layers", {layer1, layer2}}};
  ASSIGN_OR_RETURN(Json manifest_desc,
                   AddJsonBlob(out, manifest, "application/vnd.oci.image.manifest.v1+json"));
  manifest_desc["annotations"] = {{"org.opencontainers.image.ref.name", ref}};
  manifest_desc["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  Json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", {manifest_desc}}};
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(out, "/index.json"), index.dump()));
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(out, "/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})"));
  return RemoveTree(work);
}

absl::Status MakeDockerArchive(const std::string& rootfs, const std::string& out,
                               const std::string& tag) {
  const std::string dir = StrCat(out, ".dir");
  RETURN_IF_ERROR(MakeOciLayout(rootfs, dir, tag));
  ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(StrCat(dir, "/index.json")));
  ASSIGN_OR_RETURN(Json index, ParseJson(index_text));
  std::string manifest_digest = index["manifests"][0]["digest"];
  ASSIGN_OR_RETURN(std::string manifest_text,
                   ReadFileToString(StrCat(dir, "/blobs/sha256/", manifest_digest.substr(7))));
  ASSIGN_OR_RETURN(Json manifest, ParseJson(manifest_text));
  auto blob = [](const Json& d) { return StrCat("blobs/sha256/", d["digest"].get<std::string>().substr(7)); };
  Json layers = Json::array();
  for (const Json& l : manifest["layers"]) layers.push_back(blob(l));
  Json docker = Json::array({{{"Config", blob(manifest["config"])},
                              {"RepoTags", {tag}},
                              {"Layers", layers}}});
  RETURN_IF_ERROR(WriteFileAtomic(StrCat(dir, "/manifest.json"), docker.dump()));
  ::unlink(StrCat(dir, "/index.json").c_str());
  ::unlink(StrCat(dir, "/oci-layout").c_str());
  RETURN_IF_ERROR(PackTar(dir, out, false));
  return RemoveTree(dir);
}

}  // namespace loom::runtime::testing
