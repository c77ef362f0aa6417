#include "runtime/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>

#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/archive.h"
#include "runtime/fs_util.h"

namespace loom::runtime {
namespace {

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string Hex(std::string_view digest) { return std::string(digest.substr(7)); }

Json ConfigToJson(const ImageConfig& c) {
  return Json{{"Entrypoint", c.entrypoint}, {"Cmd", c.cmd}, {"Env", c.env},
              {"WorkingDir", c.working_dir}, {"User", c.user}};
}

// Reads the OCI/docker image config's "config" object; missing fields stay empty.
ImageConfig ConfigFromJson(const Json& j) {
  ImageConfig c;
  if (!j.is_object()) return c;
  auto strings = [&](const char* key, std::vector<std::string>* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return;
    for (const Json& v : *it) {
      if (v.is_string()) out->push_back(v.get<std::string>());
    }
  };
  strings("Entrypoint", &c.entrypoint);
  strings("Cmd", &c.cmd);
  strings("Env", &c.env);
  if (auto it = j.find("WorkingDir"); it != j.end() && it->is_string()) c.working_dir = *it;
  if (auto it = j.find("User"); it != j.end() && it->is_string()) c.user = *it;
  return c;
}

absl::StatusOr<Json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<Json> json = ParseJson(text);
  if (!json.ok()) return Annotate(json.status(), path);
  return json;
}

// Copies a rootfs directory (ownership, modes, symlinks, device nodes) and hashes what
// it copies, names sorted, so the digest depends on content only.
absl::Status CopyAndHash(const std::string& src, const std::string& dst, const std::string& rel,
                         EVP_MD_CTX* ctx) {
  DIR* dir = ::opendir(src.c_str());
  if (dir == nullptr) return ErrnoToStatus(errno, StrCat("open ", src));
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string s = StrCat(src, "/", n), d = StrCat(dst, "/", n), r = StrCat(rel, "/", n);
    struct stat st;
    if (::lstat(s.c_str(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", s));
    std::string header = StrCat(r, "|", st.st_mode, "|", st.st_uid, "|", st.st_gid, "|");
    if (S_ISDIR(st.st_mode)) {
      EVP_DigestUpdate(ctx, header.data(), header.size() + 1);
      if (::mkdir(d.c_str(), 0700) != 0) return ErrnoToStatus(errno, StrCat("mkdir ", d));
      RETURN_IF_ERROR(CopyAndHash(s, d, r, ctx));
    } else if (S_ISREG(st.st_mode)) {
      StrAppend(&header, st.st_size);
      EVP_DigestUpdate(ctx, header.data(), header.size() + 1);
      UniqueFd in(::open(s.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      UniqueFd out(::open(d.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!in.valid() || !out.valid()) return ErrnoToStatus(errno, StrCat("copy ", s));
      char buf[1 << 16];
      for (;;) {
        ssize_t n = ::read(in.get(), buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoToStatus(errno, StrCat("read ", s));
        if (n == 0) break;
        EVP_DigestUpdate(ctx, buf, static_cast<size_t>(n));
        if (::write(out.get(), buf, static_cast<size_t>(n)) != n) {
          return ErrnoToStatus(errno, StrCat("write ", d));
        }
      }
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t len = ::readlink(s.c_str(), target, sizeof(target) - 1);
      if (len < 0) return ErrnoToStatus(errno, StrCat("readlink ", s));
      StrAppend(&header, std::string_view(target, static_cast<size_t>(len)));
      EVP_DigestUpdate(ctx, header.data(), header.size() + 1);
      target[len] = '\0';
      if (::symlink(target, d.c_str()) != 0) return ErrnoToStatus(errno, StrCat("symlink ", d));
    } else {
      StrAppend(&header, st.st_rdev);
      EVP_DigestUpdate(ctx, header.data(), header.size() + 1);
      if (::mknod(d.c_str(), st.st_mode, st.st_rdev) != 0) {
        return ErrnoToStatus(errno, StrCat("mknod ", d));
      }
    }
    if (::lchown(d.c_str(), st.st_uid, st.st_gid) != 0) {
      return ErrnoToStatus(errno, StrCat("chown ", d));
    }
    if (!S_ISLNK(st.st_mode) && ::chmod(d.c_str(), st.st_mode & 07777) != 0) {
      return ErrnoToStatus(errno, StrCat("chmod ", d));
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    ::utimensat(AT_FDCWD, d.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobPath(const std::string& layout, const Json& descriptor) {
  if (!descriptor.is_object() || !descriptor.contains("digest") ||
      !descriptor["digest"].is_string()) {
    return absl::InvalidArgumentError("descriptor without a digest");
  }
  std::string digest = descriptor["digest"];
  if (!IsSha256Digest(digest)) {
    return absl::InvalidArgumentError(StrCat("unsupported or malformed digest '", digest, "'"));
  }
  std::string path = StrCat(layout, "/blobs/sha256/", Hex(digest));
  ASSIGN_OR_RETURN(std::string actual, Sha256File(path));
  if (actual != digest) {
    return absl::DataLossError(StrCat("blob ", digest, " has digest ", actual));
  }
  return path;
}

bool IsLinuxAmd64(const Json& d) {
  auto it = d.find("platform");
  return it != d.end() && it->is_object() && it->value("os", "") == "linux" &&
         it->value("architecture", "") == "amd64";
}

// Picks a manifest descriptor out of an OCI index (one level of nested index allowed).
absl::StatusOr<Json> PickManifest(const std::string& layout, const Json& index,
                                  std::string_view ref, int depth) {
  if (!index.contains("manifests") || !index["manifests"].is_array() ||
      index["manifests"].empty()) {
    return absl::InvalidArgumentError("index.json lists no manifests");
  }
  const Json& list = index["manifests"];
  const Json* chosen = nullptr;
  if (!ref.empty()) {
    for (const Json& d : list) {
      if (d.contains("annotations") &&
          d["annotations"].value("org.opencontainers.image.ref.name", "") == ref) {
        chosen = &d;
      }
    }
    if (chosen == nullptr && depth == 0) {
      return absl::NotFoundError(StrCat("no manifest named '", ref, "' in index.json"));
    }
  }
  if (chosen == nullptr && list.size() == 1) chosen = &list[0];
  if (chosen == nullptr) {
    for (const Json& d : list) {
      if (IsLinuxAmd64(d)) chosen = &d;
    }
  }
  if (chosen == nullptr) chosen = &list[0];
  std::string type = chosen->value("mediaType", std::string(kOciManifest));
  if (type == kOciIndex || type == kDockerManifestList) {
    if (depth > 0) return absl::InvalidArgumentError("image index nested too deeply");
    ASSIGN_OR_RETURN(std::string path, BlobPath(layout, *chosen));
    ASSIGN_OR_RETURN(Json nested, ReadJson(path));
    return PickManifest(layout, nested, "", depth + 1);
  }
  return *chosen;
}

absl::Status CheckLayerType(const Json& layer) {
  std::string type = layer.value("mediaType", "");
  if (type.find("tar") == std::string::npos) {
    return absl::InvalidArgumentError(StrCat("unsupported layer media type '", type, "'"));
  }
  return absl::OkStatus();
}

std::atomic<int> temp_counter{0};

}  // namespace

absl::Status ValidateImageName(std::string_view name) {
  if (name.empty() || name.size() > 255) {
    return absl::InvalidArgumentError(StrCat("image name '", name, "' must be 1-255 characters"));
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError(
        StrCat("image name '", name, "' must start with a letter or digit"));
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("._:/@-").find(c) ==
                                                            std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("image name '", name, "' has an invalid character '", std::string(1, c), "'"));
    }
  }
  if (name.find("..") != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("image name '", name, "' contains '..'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(std::string root) {
  if (root.empty() || root[0] != '/') {
    return absl::InvalidArgumentError(StrCat("image store root '", root, "' must be absolute"));
  }
  for (const char* sub : {"images", "tmp", "locks"}) {
    RETURN_IF_ERROR(MakeDirs(StrCat(root, "/", sub), true));
  }
  return std::unique_ptr<ImageStore>(new ImageStore(std::move(root)));
}

std::string ImageStore::ImageDir(std::string_view digest) const {
  return StrCat(root_, "/images/", Hex(digest));
}

std::string ImageStore::MakeTempDir() const {
  return StrCat(root_, "/tmp/", ::getpid(), "-", temp_counter.fetch_add(1));
}

absl::Status ImageStore::Store(
    const std::string& digest, const ImageConfig& config,
    const std::function<absl::Status(const std::string& rootfs)>& unpack) {
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(StrCat(root_, "/locks/", Hex(digest))));
  if (Exists(StrCat(ImageDir(digest), "/image.json"))) return absl::OkStatus();
  std::string tmp = MakeTempDir();
  RETURN_IF_ERROR(MakeDirs(StrCat(tmp, "/rootfs")));
  absl::Status status = unpack(StrCat(tmp, "/rootfs"));
  if (status.ok()) {
    Json meta = {{"digest", digest}, {"config", ConfigToJson(config)}};
    status = WriteFileAtomic(StrCat(tmp, "/image.json"), meta.dump(2));
  }
  if (status.ok()) {
    (void)RemoveTree(ImageDir(digest));  // a half-removed older copy
    if (::rename(tmp.c_str(), ImageDir(digest).c_str()) != 0) {
      status = ErrnoToStatus(errno, StrCat("rename into ", ImageDir(digest)));
    }
  }
  if (!status.ok()) (void)RemoveTree(tmp);
  return status;
}

absl::StatusOr<Image> ImageStore::Import(const std::string& source,
                                         const ImportOptions& options) {
  RETURN_IF_ERROR(ValidateImageName(options.name));
  struct stat st;
  if (::stat(source.c_str(), &st) != 0) return ErrnoToStatus(errno, StrCat("image source ", source));
  ImageSourceKind kind = options.kind;
  if (kind == ImageSourceKind::kAuto) {
    if (S_ISDIR(st.st_mode)) {
      kind = Exists(StrCat(source, "/index.json")) && Exists(StrCat(source, "/oci-layout"))
                 ? ImageSourceKind::kOciLayout
             : Exists(StrCat(source, "/manifest.json")) ? ImageSourceKind::kDockerArchive
                                                        : ImageSourceKind::kRootfsDir;
    } else {
      ASSIGN_OR_RETURN(std::vector<std::string> names, ListArchive(source));
      auto has = [&](std::string_view n) {
        return std::find(names.begin(), names.end(), n) != names.end();
      };
      kind = has("oci-layout") && has("index.json") ? ImageSourceKind::kOciLayout
             : has("manifest.json")                  ? ImageSourceKind::kDockerArchive
                                                     : ImageSourceKind::kRootfsTar;
    }
  }
  switch (kind) {
    case ImageSourceKind::kRootfsDir: {
      // The digest is only known after hashing, so copy into a temporary folder first.
      std::string tmp = MakeTempDir();
      RETURN_IF_ERROR(MakeDirs(tmp));
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
      EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
      absl::Status copied = CopyAndHash(source, tmp, "", ctx.get());
      if (!copied.ok()) {
        (void)RemoveTree(tmp);
        return copied;
      }
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      EVP_DigestFinal_ex(ctx.get(), md, &len);
      std::string digest = Sha256String(std::string_view(reinterpret_cast<char*>(md), len));
      absl::Status stored = Store(digest, {}, [&](const std::string& rootfs) -> absl::Status {
        if (::rmdir(rootfs.c_str()) != 0 || ::rename(tmp.c_str(), rootfs.c_str()) != 0) {
          return ErrnoToStatus(errno, StrCat("rename into ", rootfs));
        }
        return absl::OkStatus();
      });
      (void)RemoveTree(tmp);
      RETURN_IF_ERROR(stored);
      return Finish(digest, options.name);
    }
    case ImageSourceKind::kRootfsTar: {
      ASSIGN_OR_RETURN(std::string digest, Sha256File(source));
      RETURN_IF_ERROR(Store(digest, {}, [&](const std::string& rootfs) {
        return ExtractArchive(source, rootfs, /*whiteouts=*/false);
      }));
      return Finish(digest, options.name);
    }
    case ImageSourceKind::kOciLayout:
    case ImageSourceKind::kDockerArchive: {
      if (S_ISDIR(st.st_mode)) return ImportLayout(source, options);
      std::string tmp = MakeTempDir();
      RETURN_IF_ERROR(MakeDirs(tmp));
      absl::StatusOr<Image> image = [&]() -> absl::StatusOr<Image> {
        RETURN_IF_ERROR(ExtractArchive(source, tmp, /*whiteouts=*/false));
        return ImportLayout(tmp, options);
      }();
      (void)RemoveTree(tmp);
      return image;
    }
    case ImageSourceKind::kAuto:
      break;
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<Image> ImageStore::ImportLayout(const std::string& dir,
                                               const ImportOptions& options) {
  std::string digest;
  std::vector<std::string> layers;
  Json config_json;
  if (Exists(StrCat(dir, "/index.json"))) {
    ASSIGN_OR_RETURN(Json index, ReadJson(StrCat(dir, "/index.json")));
    ASSIGN_OR_RETURN(Json descriptor, PickManifest(dir, index, options.oci_ref, 0));
    ASSIGN_OR_RETURN(std::string manifest_path, BlobPath(dir, descriptor));
    ASSIGN_OR_RETURN(Json manifest, ReadJson(manifest_path));
    digest = descriptor["digest"];
    if (!manifest.contains("layers") || !manifest["layers"].is_array()) {
      return absl::InvalidArgumentError(StrCat("manifest ", digest, " has no layers"));
    }
    if (!manifest.contains("config")) {
      return absl::InvalidArgumentError(StrCat("manifest ", digest, " has no config"));
    }
    ASSIGN_OR_RETURN(std::string config_path, BlobPath(dir, manifest["config"]));
    ASSIGN_OR_RETURN(config_json, ReadJson(config_path));
    for (const Json& layer : manifest["layers"]) {
      RETURN_IF_ERROR(CheckLayerType(layer));
      ASSIGN_OR_RETURN(std::string path, BlobPath(dir, layer));
      layers.push_back(std::move(path));
    }
  } else {
    ASSIGN_OR_RETURN(Json manifest, ReadJson(StrCat(dir, "/manifest.json")));
    if (!manifest.is_array() || manifest.empty() || !manifest[0].is_object()) {
      return absl::InvalidArgumentError("manifest.json: expected a non-empty array");
    }
    const Json* chosen = &manifest[0];
    for (const Json& m : manifest) {
      if (m.contains("RepoTags") && m["RepoTags"].is_array()) {
        for (const Json& t : m["RepoTags"]) {
          if (t == options.name || (!options.oci_ref.empty() && t == options.oci_ref)) chosen = &m;
        }
      }
    }
    if (!chosen->contains("Config") || !(*chosen)["Config"].is_string() ||
        !chosen->contains("Layers") || !(*chosen)["Layers"].is_array()) {
      return absl::InvalidArgumentError("manifest.json: entry needs Config and Layers");
    }
    ASSIGN_OR_RETURN(std::string config_rel, CleanRelativePath((*chosen)["Config"].get<std::string>()));
    std::string config_path = StrCat(dir, "/", config_rel);
    ASSIGN_OR_RETURN(digest, Sha256File(config_path));
    ASSIGN_OR_RETURN(config_json, ReadJson(config_path));
    for (const Json& l : (*chosen)["Layers"]) {
      if (!l.is_string()) return absl::InvalidArgumentError("manifest.json: Layers must be strings");
      ASSIGN_OR_RETURN(std::string rel, CleanRelativePath(l.get<std::string>()));
      layers.push_back(StrCat(dir, "/", rel));
    }
  }
  ImageConfig config;
  if (config_json.is_object() && config_json.contains("config")) {
    config = ConfigFromJson(config_json["config"]);
  }
  RETURN_IF_ERROR(Store(digest, config, [&](const std::string& rootfs) -> absl::Status {
    for (const std::string& layer : layers) {
      RETURN_IF_ERROR(ExtractArchive(layer, rootfs, /*whiteouts=*/true));
    }
    return absl::OkStatus();
  }));
  return Finish(digest, options.name);
}

absl::StatusOr<Image> ImageStore::Finish(const std::string& digest, const std::string& name) {
  {
    ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(StrCat(root_, "/locks/index")));
    Json index = Json::object();
    std::string path = StrCat(root_, "/index.json");
    if (Exists(path)) {
      ASSIGN_OR_RETURN(index, ReadJson(path));
    }
    index["names"][name] = digest;
    RETURN_IF_ERROR(WriteFileAtomic(path, index.dump(2)));
  }
  return Get(digest);
}

absl::StatusOr<Image> ImageStore::Get(std::string_view name_or_digest) const {
  Json index = Json::object();
  std::string path = StrCat(root_, "/index.json");
  if (Exists(path)) {
    ASSIGN_OR_RETURN(index, ReadJson(path));
  }
  const Json names = index.value("names", Json::object());
  std::string digest(name_or_digest);
  if (!IsSha256Digest(digest)) {
    auto it = names.find(digest);
    if (it == names.end() || !it->is_string()) {
      return absl::NotFoundError(StrCat("no image named '", name_or_digest, "'"));
    }
    digest = it->get<std::string>();
  }
  absl::StatusOr<Json> meta = ReadJson(StrCat(ImageDir(digest), "/image.json"));
  if (!meta.ok()) return absl::NotFoundError(StrCat("no image ", digest));
  Image image;
  image.digest = digest;
  image.rootfs = StrCat(ImageDir(digest), "/rootfs");
  image.config = ConfigFromJson(meta->value("config", Json::object()));
  for (auto it = names.begin(); it != names.end(); ++it) {
    if (it.value() == digest) image.names.push_back(it.key());
  }
  return image;
}

absl::StatusOr<std::vector<Image>> ImageStore::List() const {
  std::vector<Image> out;
  DIR* dir = ::opendir(StrCat(root_, "/images").c_str());
  if (dir == nullptr) return ErrnoToStatus(errno, StrCat("open ", root_, "/images"));
  std::vector<std::string> hexes;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") hexes.push_back(n);
  }
  ::closedir(dir);
  std::sort(hexes.begin(), hexes.end());
  for (const std::string& hex : hexes) {
    absl::StatusOr<Image> image = Get(StrCat("sha256:", hex));
    if (image.ok()) out.push_back(std::move(*image));
  }
  return out;
}

absl::Status ImageStore::Remove(std::string_view name_or_digest) {
  ASSIGN_OR_RETURN(Image image, Get(name_or_digest));
  bool drop_image = IsSha256Digest(name_or_digest) || image.names.size() <= 1;
  {
    ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(StrCat(root_, "/locks/index")));
    std::string path = StrCat(root_, "/index.json");
    ASSIGN_OR_RETURN(Json index, ReadJson(path));
    Json& names = index["names"];
    for (auto it = names.begin(); it != names.end();) {
      bool match = drop_image ? it.value() == image.digest : it.key() == name_or_digest;
      it = match ? names.erase(it) : std::next(it);
    }
    RETURN_IF_ERROR(WriteFileAtomic(path, index.dump(2)));
  }
  if (!drop_image) return absl::OkStatus();
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(StrCat(root_, "/locks/", Hex(image.digest))));
  // Rename first so that a reader never sees a half-removed rootfs as an image.
  std::string doomed = MakeTempDir();
  if (::rename(ImageDir(image.digest).c_str(), doomed.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("remove image ", image.digest));
  }
  return RemoveTree(doomed);
}

}  // namespace loom::runtime
