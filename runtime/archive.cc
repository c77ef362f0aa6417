#include "runtime/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "common/status.h"
#include "common/strings.h"
#include "runtime/fs_util.h"

namespace loom::runtime {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

std::string HexDigest(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveDeleter>;

absl::StatusOr<ArchivePtr> OpenArchive(const std::string& path) {
  ArchivePtr a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(
        StrCat("open archive ", path, ": ", archive_error_string(a.get())));
  }
  return a;
}

absl::Status ArchiveError(struct archive* a, std::string_view what) {
  const char* msg = archive_error_string(a);
  return absl::DataLossError(StrCat(what, ": ", msg ? msg : "unreadable archive"));
}

std::pair<std::string, std::string> SplitParent(const std::string& rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

absl::Status ApplyWhiteout(int root_fd, const std::string& rel) {
  auto [parent, base] = SplitParent(rel);
  absl::StatusOr<UniqueFd> dir = OpenInRoot(root_fd, parent, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return absl::IsNotFound(dir.status()) ? absl::OkStatus() : dir.status();
  if (base == kOpaqueMarker) return Annotate(RemoveChildrenAt(dir->get()), rel);
  return Annotate(RemoveAllAt(dir->get(), base.substr(kWhiteoutPrefix.size())), rel);
}

absl::Status CopyData(struct archive* a, int fd, const std::string& rel) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) return ArchiveError(a, rel);
    const char* p = static_cast<const char*>(buf);
    while (size > 0) {
      ssize_t n = ::pwrite(fd, p, size, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, StrCat("write ", rel));
      }
      p += n;
      offset += n;
      size -= static_cast<size_t>(n);
    }
  }
  return absl::OkStatus();
}

absl::Status ExtractEntry(struct archive* a, struct archive_entry* e, int root_fd,
                          const std::string& rel) {
  if (rel.empty()) return absl::OkStatus();  // "./": the root itself
  auto [parent, base] = SplitParent(rel);
  RETURN_IF_ERROR(MkdirAllInRoot(root_fd, parent).status());
  ASSIGN_OR_RETURN(UniqueFd pdir, OpenInRoot(root_fd, parent, O_RDONLY | O_DIRECTORY));
  const char* n = base.c_str();
  const mode_t type = archive_entry_filetype(e);
  const mode_t perm = archive_entry_perm(e);
  const uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  const gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  const char* hardlink = archive_entry_hardlink(e);

  struct stat existing;
  bool exists = ::fstatat(pdir.get(), n, &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && !(hardlink == nullptr && type == AE_IFDIR && S_ISDIR(existing.st_mode))) {
    RETURN_IF_ERROR(RemoveAllAt(pdir.get(), base));
  }
  if (hardlink != nullptr) {
    ASSIGN_OR_RETURN(std::string target, CleanRelativePath(hardlink));
    auto [tparent, tbase] = SplitParent(target);
    ASSIGN_OR_RETURN(UniqueFd tdir, OpenInRoot(root_fd, tparent, O_RDONLY | O_DIRECTORY));
    if (::linkat(tdir.get(), tbase.c_str(), pdir.get(), n, 0) != 0) {
      return ErrnoToStatus(errno, StrCat("hard link ", rel, " -> ", target));
    }
    return absl::OkStatus();
  }
  struct timespec times[2] = {{archive_entry_mtime(e), 0}, {archive_entry_mtime(e), 0}};
  switch (type) {
    case AE_IFDIR: {
      if (!exists && ::mkdirat(pdir.get(), n, 0700) != 0) {
        return ErrnoToStatus(errno, StrCat("mkdir ", rel));
      }
      UniqueFd fd(::openat(pdir.get(), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", rel));
      if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), perm) != 0) {
        return ErrnoToStatus(errno, StrCat("chown/chmod ", rel));
      }
      return absl::OkStatus();
    }
    case AE_IFREG: {
      UniqueFd fd(::openat(pdir.get(), n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           0600));
      if (!fd.valid()) return ErrnoToStatus(errno, StrCat("create ", rel));
      RETURN_IF_ERROR(CopyData(a, fd.get(), rel));
      if (archive_entry_size_is_set(e) &&
          ::ftruncate(fd.get(), archive_entry_size(e)) != 0) {
        return ErrnoToStatus(errno, StrCat("truncate ", rel));
      }
      // chmod after chown: chown clears set-user-ID bits.
      if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), perm) != 0) {
        return ErrnoToStatus(errno, StrCat("chown/chmod ", rel));
      }
      ::futimens(fd.get(), times);
      return absl::OkStatus();
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr) return absl::DataLossError(StrCat(rel, ": symlink without target"));
      if (::symlinkat(target, pdir.get(), n) != 0) {
        return ErrnoToStatus(errno, StrCat("symlink ", rel));
      }
      ::fchownat(pdir.get(), n, uid, gid, AT_SYMLINK_NOFOLLOW);
      ::utimensat(pdir.get(), n, times, AT_SYMLINK_NOFOLLOW);
      return absl::OkStatus();
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      if (::mknodat(pdir.get(), n, type | perm, dev) != 0) {
        return ErrnoToStatus(errno, StrCat("mknod ", rel));
      }
      ::fchownat(pdir.get(), n, uid, gid, AT_SYMLINK_NOFOLLOW);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(StrCat(rel, ": unsupported entry type ", type));
  }
}

}  // namespace

std::string Sha256String(std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx.get(), data.data(), data.size());
  return HexDigest(ctx.get());
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read ", path));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n));
  }
  return HexDigest(ctx.get());
}

bool IsSha256Digest(std::string_view digest) {
  if (digest.size() != 71 || digest.substr(0, 7) != "sha256:") return false;
  for (char c : digest.substr(7)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> ListArchive(const std::string& archive_path) {
  ASSIGN_OR_RETURN(ArchivePtr a, OpenArchive(archive_path));
  std::vector<std::string> names;
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    ASSIGN_OR_RETURN(std::string rel, CleanRelativePath(archive_entry_pathname(e)));
    names.push_back(std::move(rel));
    archive_read_data_skip(a.get());
  }
  if (r != ARCHIVE_EOF) return ArchiveError(a.get(), archive_path);
  return names;
}

absl::Status ExtractArchive(const std::string& archive_path, const std::string& root_dir,
                            bool whiteouts) {
  UniqueFd root(::open(root_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoToStatus(errno, StrCat("open ", root_dir));
  auto is_whiteout = [](const std::string& rel) {
    auto [parent, base] = SplitParent(rel);
    return base.compare(0, kWhiteoutPrefix.size(), kWhiteoutPrefix) == 0;
  };
  if (whiteouts) {
    // Pass 1: whiteouts, against the lower layers only.
    ASSIGN_OR_RETURN(ArchivePtr a, OpenArchive(archive_path));
    struct archive_entry* e;
    int r;
    while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
      ASSIGN_OR_RETURN(std::string rel, CleanRelativePath(archive_entry_pathname(e)));
      if (is_whiteout(rel)) RETURN_IF_ERROR(ApplyWhiteout(root.get(), rel));
      archive_read_data_skip(a.get());
    }
    if (r != ARCHIVE_EOF) return ArchiveError(a.get(), archive_path);
  }
  ASSIGN_OR_RETURN(ArchivePtr a, OpenArchive(archive_path));
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    absl::StatusOr<std::string> rel = CleanRelativePath(archive_entry_pathname(e));
    if (!rel.ok()) return Annotate(rel.status(), archive_path);
    if (whiteouts && is_whiteout(*rel)) continue;
    RETURN_IF_ERROR(Annotate(ExtractEntry(a.get(), e, root.get(), *rel), archive_path));
  }
  if (r != ARCHIVE_EOF) return ArchiveError(a.get(), archive_path);
  return absl::OkStatus();
}

}  // namespace loom::runtime
