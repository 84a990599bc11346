// Metadata::Open and Metadata::ReadSuperblock: directory classification,
// formatting and superblock validation.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>

#include "base/log.h"
#include "metadata/clone_files.h"
#include "metadata/dir_lock.h"
#include "metadata/metadata_impl.h"
#include "metadata/superblock_codec.h"

namespace clonefs::metadata {
namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

Status CompareSuperblock(const Superblock& sb, const MetadataOptions& o) {
  std::vector<std::string> diffs;
  if (!o.use_stored_region_size && sb.region_size != o.region_size) {
    diffs.push_back("region size: metadata has " + std::to_string(sb.region_size) +
                    ", requested " + std::to_string(o.region_size));
  }
  if (sb.image_size != o.image_size) {
    diffs.push_back("image size: metadata has " + std::to_string(sb.image_size) +
                    ", requested " + std::to_string(o.image_size));
  }
  if (o.verify_identities) {
    for (const char* which : {"source", "dest"}) {
      const bool src = which[0] == 's';
      for (std::string& d : IdentityDifferences(which, src ? sb.source : sb.dest,
                                                src ? o.source : o.dest)) {
        diffs.push_back(std::move(d));
      }
    }
  }
  if (diffs.empty()) return Status::OK();
  return Status::Mismatch("metadata " + o.dir + " belongs to a different clone: " + Join(diffs));
}

Status ValidateOptions(const MetadataOptions& o) {
  std::vector<std::string> problems;
  if (o.dir.empty()) problems.push_back("no metadata directory given");
  if (o.image_size == 0) problems.push_back("image size is 0");
  if (Status s = ValidateRegionSize(o.region_size); !s.ok()) problems.push_back(s.message());
  if (problems.empty()) return Status::OK();
  return Status::InvalidArgument(Join(problems));
}

// Creates `dir` and any missing parents, fsyncing each new entry's parent so
// the directory survives a power cut.
Status MakeDirs(const std::filesystem::path& dir) {
  std::error_code ec;  // an error here resurfaces as mkdir's errno below
  if (dir.empty() || std::filesystem::exists(dir, ec)) return Status::OK();
  const std::filesystem::path parent =
      dir.has_parent_path() ? dir.parent_path() : std::filesystem::path(".");
  CLONEFS_RETURN_IF_ERROR(MakeDirs(parent));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create metadata directory " + dir.string());
  }
  const int fd = open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + parent.string());
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  return rc == 0 ? Status::OK() : Status::FromErrno(err, "fsync " + parent.string());
}

enum class DirKind { kEmpty, kRocksDb, kInterruptedFormat, kForeign };

// Files RocksDB writes while creating a database, before CURRENT exists.
bool IsCreationLeftover(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  auto ends = [&](const char* p) {
    const size_t n = strlen(p);
    return name.size() >= n && name.compare(name.size() - n, n, p) == 0;
  };
  return name == "LOCK" || name == "IDENTITY" || starts("LOG") || starts("MANIFEST-") ||
         starts("OPTIONS-") || ends(".dbtmp");
}

// kInterruptedFormat: only files RocksDB creates before CURRENT, i.e. a
// format that crashed before the database existed; nothing in it to lose.
// clonefs's own files beside the store (clone_files.h: the log, the daemon
// record, the control socket) count for nothing either way.
Result<DirKind> Classify(const std::string& dir) {
  std::error_code ec;  // the non-throwing overloads: no exception leaves here
  std::filesystem::directory_iterator it(dir, ec), end;
  bool any = false, only_leftovers = true;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == "CURRENT") return DirKind::kRocksDb;
    if (IsCloneSideFile(name)) continue;  // the log, the daemon record, the socket
    any = true;
    only_leftovers = only_leftovers && it->is_regular_file(ec) && IsCreationLeftover(name);
  }
  if (ec) return Status::FromErrno(ec.value(), "list metadata directory " + dir);
  if (!any) return DirKind::kEmpty;
  return only_leftovers ? DirKind::kInterruptedFormat : DirKind::kForeign;
}

Status NotClonefs(const std::string& dir) {
  return Status::InvalidArgument("metadata directory " + dir +
                                 " is not empty and holds no clonefs metadata; refusing to "
                                 "format it (use an empty or new directory)");
}

// What a reader (info, check) is told about a store whose creation was
// interrupted: NotFound, so it is never called corrupt, with the same words
// the mount logs when it completes such a creation.
Status InterruptedCreation(const std::string& dir) {
  return Status::NotFound("metadata " + dir + " holds an interrupted creation (a format that "
                          "did not finish, no clone recorded yet); the next mount of this clone "
                          "completes it");
}

// A store written before format 3 has no dest generation: once the dest
// matched on everything recorded, its generation is recorded now (the
// superblock is rewritten as format 3, in one synced write), so from this
// mount on a dest recreated under the same inode number is refused also
// where the file system keeps no birth time. Errors: the write's (NoSpace on
// a full file system), with context; nothing is changed then.
Status RecordDestGeneration(const MetadataOptions& o, RocksStore* store, Superblock* sb) {
  const uint32_t flag = FileIdentity::kGeneration;
  if ((sb->dest.flags & flag) != 0 || (o.dest.flags & flag) == 0) return Status::OK();
  Superblock upgraded = *sb;
  upgraded.format_version = kFormatVersion;
  upgraded.dest.flags |= flag;
  upgraded.dest.generation = o.dest.generation;
  Status s = store->PutSuperblock(EncodeSuperblock(upgraded));
  if (!s.ok()) return s.WithContext("metadata " + o.dir + ": recording the dest's generation");
  CLONEFS_LOG_INFO(
      "metadata %s: recorded the dest's inode generation %u (superblock format %u "
      "-> %u)",
      o.dir.c_str(), upgraded.dest.generation, sb->format_version, upgraded.format_version);
  *sb = std::move(upgraded);
  return Status::OK();
}

Superblock NewSuperblock(const MetadataOptions& o) {
  Superblock sb;
  sb.format_version = kFormatVersion;
  sb.uuid = NewUuid();
  sb.region_size = o.region_size;
  sb.image_size = o.image_size;
  sb.nr_regions = NrRegionsFor(o.image_size, o.region_size);
  sb.source = o.source;
  sb.dest = o.dest;
  sb.created_unix_s = static_cast<uint64_t>(time(nullptr));
  return sb;
}

// Opens the RocksDB store of an existing directory and returns its decoded
// superblock, or nullopt if the store is a clonefs store whose format was
// interrupted before the superblock was written (no key at all).
struct Opened {
  std::unique_ptr<RocksStore> store;
  std::optional<Superblock> sb;
};

Result<Opened> OpenExisting(const StoreOptions& base, const std::string& dir, bool may_create_cf) {
  CLONEFS_ASSIGN_OR_RETURN(std::vector<std::string> cfs, RocksStore::ListColumnFamilies(base));
  const std::set<std::string> names(cfs.begin(), cfs.end());
  const std::set<std::string> full = {"default", std::string(kRegionsColumnFamily)};
  StoreOptions so = base;
  if (names != full) {
    if (names == std::set<std::string>{"default"} && !may_create_cf) return InterruptedCreation(dir);
    if (names != std::set<std::string>{"default"}) {
      std::string list;
      for (const auto& n : cfs) list += (list.empty() ? "" : ", ") + n;
      return Status::Corruption("metadata " + dir + " is a RocksDB store with column families [" +
                                list + "], not clonefs metadata (expected default and " +
                                std::string(kRegionsColumnFamily) + ")");
    }
    so.create = true;  // a format interrupted before the regions family existed
  }
  Opened out;
  CLONEFS_ASSIGN_OR_RETURN(out.store, RocksStore::Open(so));
  CLONEFS_ASSIGN_OR_RETURN(std::optional<std::string> raw, out.store->GetSuperblock());
  if (!raw) {
    CLONEFS_ASSIGN_OR_RETURN(const bool empty, out.store->IsEmpty());
    if (empty && !may_create_cf) return InterruptedCreation(dir);
    if (!empty) {
      return Status::Corruption("metadata " + dir +
                                " holds a RocksDB store without a clonefs superblock (not "
                                "clonefs metadata, or damaged)");
    }
    CLONEFS_LOG_WARN("metadata %s: completing a creation that was interrupted (an empty store "
                     "without a superblock)", dir.c_str());
    return out;  // interrupted format: nothing in it, safe to format
  }
  Result<Superblock> sb = DecodeSuperblock(*raw);
  if (!sb.ok()) return sb.status().WithContext("metadata " + dir);
  out.sb = std::move(sb).value();
  return out;
}

}  // namespace

Result<std::unique_ptr<Metadata>> Metadata::Open(const MetadataOptions& o) {
  CLONEFS_RETURN_IF_ERROR(ValidateOptions(o));
  const bool may_format = o.create_if_missing && !o.read_only;
  struct stat st;
  if (stat(o.dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("metadata path " + o.dir + " is not a directory");
  } else if (errno != ENOENT) {
    return Status::FromErrno(errno, "stat metadata directory " + o.dir);
  } else if (!may_format) {
    return Status::NotFound("no clonefs metadata at " + o.dir);
  } else {
    CLONEFS_RETURN_IF_ERROR(MakeDirs(o.dir));
  }
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<DirLock> lock, DirLock::Acquire(o.dir));
  const StoreOptions so = StoreOptionsFor(o, lock->real_dir());
  CLONEFS_ASSIGN_OR_RETURN(const DirKind kind, Classify(lock->real_dir()));
  if (kind == DirKind::kForeign) return NotClonefs(o.dir);

  Opened opened;
  if (kind == DirKind::kRocksDb) {
    CLONEFS_ASSIGN_OR_RETURN(opened, OpenExisting(so, o.dir, may_format));
  } else if (!may_format) {
    return Status::NotFound("no clonefs metadata in " + o.dir);
  } else {
    if (kind == DirKind::kInterruptedFormat) {
      CLONEFS_LOG_WARN("metadata %s: completing a creation that was interrupted (RocksDB files "
                       "without a database)", o.dir.c_str());
    }
    StoreOptions create = so;
    create.create = true;
    CLONEFS_ASSIGN_OR_RETURN(opened.store, RocksStore::Open(create));
  }
  Superblock sb;
  if (opened.sb) {
    sb = *opened.sb;
    CLONEFS_RETURN_IF_ERROR(CompareSuperblock(sb, o));
    if (!o.read_only && o.verify_identities) {
      CLONEFS_RETURN_IF_ERROR(RecordDestGeneration(o, opened.store.get(), &sb));
    }
  } else {
    sb = NewSuperblock(o);
    CLONEFS_RETURN_IF_ERROR(opened.store->PutSuperblock(EncodeSuperblock(sb)));
    CLONEFS_LOG_INFO("formatted clonefs metadata %s (uuid %s, %llu regions of %llu bytes)",
                     o.dir.c_str(), sb.uuid.c_str(), static_cast<unsigned long long>(sb.nr_regions),
                     static_cast<unsigned long long>(sb.region_size));
  }
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<HydrationBitmap> bitmap,
                           HydrationBitmap::Create(sb.nr_regions));
  auto md = std::make_unique<MetadataImpl>(o, std::move(sb), std::move(lock),
                                           std::move(opened.store), std::move(bitmap));
  if (opened.sb) CLONEFS_RETURN_IF_ERROR(md->LoadFromStore(/*fresh=*/true));
  return std::unique_ptr<Metadata>(std::move(md));
}

namespace {

// An existing store opened read-only under the directory's lock, for the
// readers that need no full Open (ReadSuperblock, ReadSettings). The lock is
// held while the caller reads. Errors: NotFound when there is no clone
// (InterruptedCreation's words for a creation that did not finish), the
// store's errors otherwise.
struct ReadOnlyStore {
  std::unique_ptr<DirLock> lock;
  Opened opened;
};

Result<ReadOnlyStore> OpenStoreForReading(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::NotFound("no clonefs metadata at " + dir);
  }
  ReadOnlyStore r;
  CLONEFS_ASSIGN_OR_RETURN(r.lock, DirLock::Acquire(dir));
  CLONEFS_ASSIGN_OR_RETURN(const DirKind kind, Classify(r.lock->real_dir()));
  if (kind == DirKind::kEmpty) return Status::NotFound("no clonefs metadata in " + dir);
  if (kind == DirKind::kInterruptedFormat) return InterruptedCreation(dir);
  if (kind == DirKind::kForeign) return NotClonefs(dir);
  MetadataOptions o;
  o.dir = dir;
  o.read_only = true;
  CLONEFS_ASSIGN_OR_RETURN(r.opened,
                           OpenExisting(StoreOptionsFor(o, r.lock->real_dir()), dir, false));
  if (!r.opened.sb) return Status::NotFound("no clonefs superblock in " + dir);
  return r;
}

}  // namespace

Result<Superblock> Metadata::ReadSuperblock(const std::string& dir) {
  CLONEFS_ASSIGN_OR_RETURN(ReadOnlyStore r, OpenStoreForReading(dir));
  return *r.opened.sb;
}

Result<std::optional<std::string>> Metadata::ReadSettings(const std::string& dir) {
  CLONEFS_ASSIGN_OR_RETURN(ReadOnlyStore r, OpenStoreForReading(dir));
  Result<std::optional<std::string>> raw = r.opened.store->GetRecord(kSettingsKey);
  if (!raw.ok()) return raw.status().WithContext("metadata " + dir);
  return raw;
}

}  // namespace clonefs::metadata
