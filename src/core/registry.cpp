// The generic part of KernelRegistry: sources, cache keys, the disk cache (atomic writes, checked
// entries), the per-device memory cache with one compile per key, and CompileGuard. Compiling and
// loading go through kernel_backend (NVRTC and the CUDA runtime, or "unsupported").
#include "l2norm/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "core/kernel_backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm {

namespace {

thread_local bool compile_disallowed = false;

constexpr std::array<char, 8> kEntryMagic = {'L', '2', 'N', 'K', 'E', 'R', 'N', '1'};
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

std::uint64_t fnv1a(std::string_view bytes, std::uint64_t hash = kFnvOffset) {
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

// 128-bit key: two independent 64-bit hashes of the same material (the second over the bytes with
// a different starting state), written as 32 hex digits.
struct CacheKey {
  std::array<std::uint64_t, 2> words{};

  std::string hex() const {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    for (const std::uint64_t word : words) {
      for (int shift = 60; shift >= 0; shift -= 4) text += kDigits[(word >> shift) & 0xf];
    }
    return text;
  }
};

CacheKey hash_key(const std::string& material) {
  return {{fnv1a(material), fnv1a(material, fnv1a("l2norm-second-lane"))}};
}

// Fixed-size header in front of every disk entry; a file whose header, size or checksum
// disagrees is rejected and recompiled.
struct EntryHeader {
  std::array<char, 8> magic;
  std::array<std::uint64_t, 2> key;
  std::uint64_t payload_bytes;
  std::uint64_t payload_checksum;
};

std::uint64_t checksum(const std::vector<char>& payload) {
  return fnv1a(std::string_view(payload.data(), payload.size()));
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string text;
  for (const auto& part : parts) {
    if (!text.empty()) text += separator;
    text += part;
  }
  return text;
}

std::string describe(const KernelSpec& spec) {
  return "kernel '" + spec.entry + "' of '" + spec.source + "' [" + join(spec.defines, " ") + "]";
}

// The names a source pulls in with #include "name".
std::vector<std::string> quoted_includes(std::string_view text) {
  std::vector<std::string> names;
  std::size_t position = 0;
  while ((position = text.find("#include", position)) != std::string_view::npos) {
    position += 8;
    while (position < text.size() && (text[position] == ' ' || text[position] == '\t')) ++position;
    if (position >= text.size() || text[position] != '"') continue;
    const std::size_t end = text.find('"', position + 1);
    if (end == std::string_view::npos) break;
    names.emplace_back(text.substr(position + 1, end - position - 1));
    position = end + 1;
  }
  return names;
}

enum class DiskRead { missing, valid, rejected };

// Closes a C stdio file when it goes out of scope. Entries are read and written with C stdio,
// as bytes: the library keeps no state in C++ streams or the global C++ locale.
struct FileCloser {
  void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

DiskRead read_entry(const std::filesystem::path& path, const CacheKey& key,
                    std::vector<char>& payload) {
  const File file(std::fopen(path.c_str(), "rb"));
  if (!file) return DiskRead::missing;
  EntryHeader header{};
  if (std::fread(&header, sizeof header, 1, file.get()) != 1) return DiskRead::rejected;
  if (header.magic != kEntryMagic || header.key != key.words ||
      header.payload_bytes > (std::uint64_t{1} << 32)) {
    return DiskRead::rejected;
  }
  payload.resize(static_cast<std::size_t>(header.payload_bytes));
  if (std::fread(payload.data(), 1, payload.size(), file.get()) != payload.size()) {
    return DiskRead::rejected;
  }
  if (std::fgetc(file.get()) != EOF) return DiskRead::rejected;
  return checksum(payload) == header.payload_checksum ? DiskRead::valid : DiskRead::rejected;
}

// Writes to a uniquely named temporary file in the same folder, then renames it over the entry:
// readers in other processes see the old file or the complete new one, never a partial one.
// The disk cache is an optimization, so failures leave it untouched and are not errors.
void write_entry(const std::filesystem::path& path, const CacheKey& key,
                 const std::vector<char>& payload) {
  static std::atomic<std::uint64_t> sequence{0};
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  const std::filesystem::path temporary =
      path.string() + ".tmp." + std::to_string(::getpid()) + "." +
      std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())) + "." +
      std::to_string(sequence.fetch_add(1));
  {
    File file(std::fopen(temporary.c_str(), "wb"));
    if (!file) return;
    const EntryHeader header{kEntryMagic, key.words, payload.size(), checksum(payload)};
    const bool written =
        std::fwrite(&header, sizeof header, 1, file.get()) == 1 &&
        std::fwrite(payload.data(), 1, payload.size(), file.get()) == payload.size() &&
        std::fflush(file.get()) == 0;
    if (std::fclose(file.release()) != 0 || !written) {
      std::filesystem::remove(temporary, error);
      return;
    }
  }
  std::filesystem::rename(temporary, path, error);
  if (error) std::filesystem::remove(temporary, error);
}

std::string default_cache_dir() {
  if (const char* dir = std::getenv("L2NORM_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return (std::filesystem::path(xdg) / "l2norm").string();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return (std::filesystem::path(home) / ".cache" / "l2norm").string();
  }
  return {};
}

// Everything one compile needs, and the key that names its result.
struct PreparedCompile {
  detail::kernel_backend::NamedSource source;
  std::vector<detail::kernel_backend::NamedSource> headers;
  std::vector<std::string> options;
  // The options with the spec's spill_fallback_define in place of its namesake; empty when the
  // spec has none.
  std::vector<std::string> fallback_options;
  CacheKey key;
};

// The binary of `prepared`: the build with its options, or, where that one spills registers and
// there is a fallback, the build with the fallback options. The two builds run side by side, so
// a first call waits for the slower of them, not for both. Returns the number of compiles run.
int compile_prepared(const PreparedCompile& prepared, std::vector<char>& binary) {
  if (prepared.fallback_options.empty()) {
    binary = detail::kernel_backend::compile(prepared.source, prepared.headers, prepared.options);
    return 1;
  }
  auto fallback = std::async(std::launch::async, [&prepared] {
    return detail::kernel_backend::compile(prepared.source, prepared.headers,
                                           prepared.fallback_options);
  });
  bool spills = false;
  std::vector<char> bounded;
  try {
    bounded = detail::kernel_backend::compile(prepared.source, prepared.headers, prepared.options,
                                              &spills);
  } catch (...) {
    fallback.wait();
    throw;
  }
  std::vector<char> unbounded = fallback.get();
  binary = spills ? std::move(unbounded) : std::move(bounded);
  return 2;
}

// A kernel's compact identity (KernelRegistry::kernel(device, identity)): its type, its bytes and
// the device.
struct IdentityKey {
  static constexpr std::size_t kMaxBytes = 64;
  int device = 0;
  const void* type = nullptr;
  std::size_t size = 0;
  std::array<std::byte, kMaxBytes> bytes{};

  friend bool operator==(const IdentityKey&, const IdentityKey&) = default;
};

struct IdentityHash {
  std::size_t operator()(const IdentityKey& key) const noexcept {
    std::uint64_t hash = kFnvOffset ^ static_cast<std::uint64_t>(key.device);
    hash = (hash ^ reinterpret_cast<std::uintptr_t>(key.type)) * kFnvPrime;
    for (std::size_t i = 0; i < key.size; ++i) {
      hash = (hash ^ static_cast<std::uint64_t>(key.bytes[i])) * kFnvPrime;
    }
    return static_cast<std::size_t>(hash);
  }
};

IdentityKey identity_key(const Device& device, std::span<const std::byte> identity,
                         const void* type) {
  if (identity.size() > IdentityKey::kMaxBytes) {
    throw Error(ErrorCode::invalid_argument,
                "KernelRegistry: a kernel identity of " + std::to_string(identity.size()) +
                    " bytes is longer than " + std::to_string(IdentityKey::kMaxBytes));
  }
  IdentityKey key;
  key.device = device.index();
  key.type = type;
  key.size = identity.size();
  std::copy(identity.begin(), identity.end(), key.bytes.begin());
  return key;
}

}  // namespace

class KernelRegistry::Impl {
 public:
  // The sources `spec` needs, its compile options for `arch`, and its cache key.
  PreparedCompile prepare(const KernelSpec& spec, int arch) const;

  mutable std::mutex mutex;
  std::map<std::string, std::string, std::less<>> sources;
  std::optional<std::string> cache_dir_override;
  // The one cache of loaded kernels, keyed by "device index/cache key/attributes"; a pending
  // future means a compile is in flight.
  std::unordered_map<std::string, std::shared_future<void*>> kernels;
  // An index into `kernels` by compact identity, so that a dispatch finds its loaded kernel
  // without building a spec or hashing sources.
  // Entries are added once their kernel is loaded.
  std::unordered_map<IdentityKey, void*, IdentityHash> by_identity;
  std::atomic<std::uint64_t> compiles{0};
  std::atomic<std::uint64_t> memory_hits{0};
  std::atomic<std::uint64_t> disk_hits{0};
  std::atomic<std::uint64_t> disk_rejects{0};
};

PreparedCompile KernelRegistry::Impl::prepare(const KernelSpec& spec, int arch) const {
  PreparedCompile prepared;
  prepared.options = detail::kernel_backend::base_options(arch);
  for (const auto& define : spec.defines) prepared.options.push_back("-D" + define);
  if (!spec.spill_fallback_define.empty()) {
    const std::string& fallback = spec.spill_fallback_define;
    const std::string name = "-D" + fallback.substr(0, fallback.find('=')) + "=";
    prepared.fallback_options = prepared.options;
    const auto namesake =
        std::find_if(prepared.fallback_options.begin(), prepared.fallback_options.end(),
                     [&name](const std::string& option) { return option.starts_with(name); });
    if (namesake == prepared.fallback_options.end() || fallback.find('=') == std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "KernelRegistry: " + describe(spec) +
                                                   " has the spill fallback '" + fallback +
                                                   "', which replaces none of its defines");
    }
    *namesake = "-D" + fallback;
  }

  std::set<std::string> closure;
  {
    std::lock_guard lock(mutex);
    const auto found = sources.find(spec.source);
    if (found == sources.end()) {
      throw Error(ErrorCode::invalid_argument,
                  "KernelRegistry: " + describe(spec) + " names an unregistered source");
    }
    prepared.source = {found->first, found->second};
    std::vector<std::string> pending = quoted_includes(found->second);
    while (!pending.empty()) {
      const std::string name = std::move(pending.back());
      pending.pop_back();
      const auto header = sources.find(name);
      if (header == sources.end() || !closure.insert(name).second) continue;
      prepared.headers.push_back({header->first, header->second});
      for (auto& nested : quoted_includes(header->second)) pending.push_back(std::move(nested));
    }
  }

  std::string material = "l2norm kernel cache 1\nlibrary " L2NORM_VERSION "\ncompiler ";
  material += detail::kernel_backend::compiler_identity();
  material += "\narch " + std::to_string(arch) + "\nentry " + spec.entry + "\noptions ";
  material += join(prepared.options, "\x1f");
  if (!prepared.fallback_options.empty())
    material += "\nspill fallback " + spec.spill_fallback_define;
  const auto add_source = [&material](const detail::kernel_backend::NamedSource& source) {
    material += "\nsource " + source.name + " " + std::to_string(source.text.size()) + "\n";
    material += source.text;
  };
  add_source(prepared.source);
  std::vector<detail::kernel_backend::NamedSource> sorted_headers = prepared.headers;
  std::sort(sorted_headers.begin(), sorted_headers.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& header : sorted_headers) add_source(header);
  prepared.key = hash_key(material);
  return prepared;
}

KernelRegistry& KernelRegistry::global() {
  static KernelRegistry registry;
  return registry;
}

KernelRegistry::KernelRegistry() : impl_(std::make_unique<Impl>()) {}

KernelRegistry::~KernelRegistry() = default;

void KernelRegistry::register_source(std::string_view name, std::string_view source) {
  if (name.empty()) {
    throw Error(ErrorCode::invalid_argument, "KernelRegistry: a source needs a non-empty name");
  }
  std::lock_guard lock(impl_->mutex);
  const auto [position, inserted] = impl_->sources.try_emplace(std::string(name), source);
  if (!inserted && position->second != source) {
    throw Error(ErrorCode::invalid_argument, "KernelRegistry: source '" + std::string(name) +
                                                 "' is already registered with other text");
  }
}

bool KernelRegistry::has_source(std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->sources.find(name) != impl_->sources.end();
}

std::vector<std::string> KernelRegistry::source_names() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> names;
  for (const auto& entry : impl_->sources) names.push_back(entry.first);
  return names;
}

std::string KernelRegistry::cache_dir() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cache_dir_override ? *impl_->cache_dir_override : default_cache_dir();
}

void KernelRegistry::set_cache_dir(std::string path) {
  std::lock_guard lock(impl_->mutex);
  impl_->cache_dir_override = std::move(path);
}

RegistryStats KernelRegistry::stats() const {
  return {impl_->compiles.load(), impl_->memory_hits.load(), impl_->disk_hits.load(),
          impl_->disk_rejects.load()};
}

void KernelRegistry::clear_memory_cache() {
  std::lock_guard lock(impl_->mutex);
  impl_->kernels.clear();
  impl_->by_identity.clear();
}

std::vector<char> KernelRegistry::compile_for_arch(const KernelSpec& spec, int arch) {
  const PreparedCompile prepared = impl_->prepare(spec, arch);
  std::vector<char> binary;
  impl_->compiles.fetch_add(static_cast<std::uint64_t>(compile_prepared(prepared, binary)));
  return binary;
}

void* KernelRegistry::kernel(const Device& device, const KernelSpec& spec) {
  if (!device.is_cuda()) {
    throw Error(ErrorCode::unsupported,
                "KernelRegistry: kernels run on CUDA devices, not on " + device.name());
  }
  const PreparedCompile prepared =
      impl_->prepare(spec, detail::kernel_backend::device_arch(device));
  // The attribute set at load is part of what the handle is, not of the binary.
  const std::string memory_key = std::to_string(device.index()) + "/" + prepared.key.hex() + "/" +
                                 std::to_string(spec.max_dynamic_shared_bytes);

  std::shared_future<void*> pending;
  std::promise<void*> promise;
  {
    std::lock_guard lock(impl_->mutex);
    if (const auto found = impl_->kernels.find(memory_key); found != impl_->kernels.end()) {
      impl_->memory_hits.fetch_add(1);
      pending = found->second;
    } else if (compile_disallowed) {
      throw Error(ErrorCode::unsupported,
                  "KernelRegistry: " + describe(spec) + " is not compiled for " + device.name() +
                      " and compiling is not allowed here (CUDA-graph capture or CompileGuard); "
                      "prewarm the op's kernels before capturing");
    } else {
      impl_->kernels.emplace(memory_key, promise.get_future().share());
    }
  }
  // Another thread owns this key's compile (or finished it): wait for its result.
  if (pending.valid()) return pending.get();

  try {
    std::vector<char> binary;
    const std::string dir = cache_dir();
    const std::filesystem::path path =
        dir.empty() ? std::filesystem::path()
                    : std::filesystem::path(dir) / (prepared.key.hex() + ".cubin");
    const DiskRead disk = dir.empty() ? DiskRead::missing : read_entry(path, prepared.key, binary);
    if (disk == DiskRead::valid) {
      impl_->disk_hits.fetch_add(1);
    } else {
      if (disk == DiskRead::rejected) impl_->disk_rejects.fetch_add(1);
      impl_->compiles.fetch_add(static_cast<std::uint64_t>(compile_prepared(prepared, binary)));
      if (!dir.empty()) write_entry(path, prepared.key, binary);
    }
    void* const handle =
        detail::kernel_backend::load(device, binary, spec.entry, spec.max_dynamic_shared_bytes);
    promise.set_value(handle);
    return handle;
  } catch (...) {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->kernels.erase(memory_key);
    }
    promise.set_exception(std::current_exception());
    throw;
  }
}

void* KernelRegistry::find_by_identity(const Device& device, std::span<const std::byte> identity,
                                       const void* type) const {
  if (!device.is_cuda()) return nullptr;
  const IdentityKey key = identity_key(device, identity, type);
  std::lock_guard lock(impl_->mutex);
  const auto found = impl_->by_identity.find(key);
  if (found == impl_->by_identity.end()) return nullptr;
  impl_->memory_hits.fetch_add(1);
  return found->second;
}

void* KernelRegistry::kernel_by_identity(const Device& device, std::span<const std::byte> identity,
                                         const void* type,
                                         const std::function<KernelSpec()>& make_spec) {
  if (void* const handle = find_by_identity(device, identity, type)) return handle;
  void* const handle = kernel(device, make_spec());
  std::lock_guard lock(impl_->mutex);
  impl_->by_identity.emplace(identity_key(device, identity, type), handle);
  return handle;
}

CompileGuard::CompileGuard() noexcept : previous_(compile_disallowed) {
  compile_disallowed = true;
}

CompileGuard::~CompileGuard() {
  compile_disallowed = previous_;
}

}  // namespace l2norm
