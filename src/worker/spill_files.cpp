// The worker's spill files: format, write and read with optional lz4, and the I/O thread (see spill_files.hpp).
#include "worker/spill_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifdef DTASK_HAVE_LZ4
#include <lz4.h>
#endif

namespace dtask::worker {

namespace {

constexpr char kMagic[8] = {'D', 'T', 'S', 'P', 'I', 'L', 'L', '1'};
constexpr std::uint32_t kCodecNone = 0, kCodecLz4 = 1;
constexpr std::uint32_t kMaxParts = 1u << 20;
constexpr std::size_t kAlign = 64;

struct Head {
  char magic[8];
  std::uint32_t parts;
  std::uint32_t reserved;
};
struct IndexEntry {
  std::uint64_t raw;
  std::uint64_t stored;
  std::uint32_t codec;
  std::uint32_t reserved;
};

std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// The bytes of part i: 0 the header, then the frames.
std::pair<const std::byte*, std::size_t> part(const Payload& p, std::size_t i) {
  if (i == 0) return {reinterpret_cast<const std::byte*>(p.header.data()), p.header.size()};
  return {p.frames[i - 1].data(), p.frames[i - 1].size()};
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* b = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    b += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads exactly n bytes at offset; false (errno 0 for a short file) otherwise.
bool pread_all(int fd, void* data, std::size_t n, std::uint64_t offset) {
  auto* b = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd, b, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) {
      errno = 0;
      return false;
    }
    b += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
  return true;
}

#ifdef DTASK_HAVE_LZ4
// Whether the payload's first kSpillSample bytes (its largest part's) shrink below 80 %.
bool worth_compressing(const Payload& p) {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0; i <= p.frames.size(); ++i) {
    auto [d, n] = part(p, i);
    if (n > size) data = d, size = n;
  }
  if (size < 4096) return false;  // small: not worth a thought
  const int sample = static_cast<int>(std::min(size, kSpillSample));
  std::vector<char> out(static_cast<std::size_t>(LZ4_compressBound(sample)));
  const int c = LZ4_compress_default(reinterpret_cast<const char*>(data), out.data(), sample, static_cast<int>(out.size()));
  return c > 0 && static_cast<double>(c) < 0.8 * sample;
}
#endif

}  // namespace

bool spill_compression_available() {
#ifdef DTASK_HAVE_LZ4
  return true;
#else
  return false;
#endif
}

SpillWrite write_spill_file(const std::string& path, const Payload& p, bool compress) {
  SpillWrite r;
  auto fail = [&](int fd, const char* what) {
    r.ok = false;
    r.error = std::string("cannot ") + what + " spill file " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
    return r;
  };
  const std::size_t nparts = p.frames.size() + 1;
#ifdef DTASK_HAVE_LZ4
  r.compressed = compress && worth_compressing(p);
#else
  (void)compress;
#endif
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(-1, "create");
  std::vector<IndexEntry> index(nparts);
  Head head{};
  std::memcpy(head.magic, kMagic, sizeof kMagic);
  head.parts = static_cast<std::uint32_t>(nparts);
  const std::uint64_t data_start = sizeof(Head) + nparts * sizeof(IndexEntry);
  if (::lseek(fd, static_cast<off_t>(data_start), SEEK_SET) < 0) return fail(fd, "write");
  std::uint64_t at = data_start;
  std::vector<char> block;
  for (std::size_t i = 0; i < nparts; ++i) {
    auto [data, size] = part(p, i);
    IndexEntry& e = index[i];
    e.raw = size;
    e.codec = kCodecNone;
#ifdef DTASK_HAVE_LZ4
    if (r.compressed && size > 0) {
      e.codec = kCodecLz4;
      block.resize(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(kSpillBlock))) + 4);
      for (std::size_t off = 0; off < size; off += kSpillBlock) {
        const int n = static_cast<int>(std::min(kSpillBlock, size - off));
        const int c = LZ4_compress_default(reinterpret_cast<const char*>(data + off), block.data() + 4, n,
                                           static_cast<int>(block.size() - 4));
        if (c <= 0) {
          errno = EINVAL;
          return fail(fd, "compress");
        }
        const std::uint32_t c32 = static_cast<std::uint32_t>(c);
        std::memcpy(block.data(), &c32, 4);
        if (!write_all(fd, block.data(), static_cast<std::size_t>(c) + 4)) return fail(fd, "write");
        e.stored += static_cast<std::uint64_t>(c) + 4;
      }
      at += e.stored;
      continue;
    }
#endif
    if (size > 0 && !write_all(fd, data, size)) return fail(fd, "write");
    e.stored = size;
    at += size;
  }
  // The head and index last: a file cut short by a crash has no valid head.
  iovec iov[2] = {{&head, sizeof head}, {index.data(), index.size() * sizeof(IndexEntry)}};
  std::size_t want = iov[0].iov_len + iov[1].iov_len;
  const ssize_t w = ::pwritev(fd, iov, 2, 0);
  if (w < 0 || static_cast<std::size_t>(w) != want) {
    if (w >= 0) errno = EIO;
    return fail(fd, "write");
  }
  if (::close(fd) != 0) return fail(-1, "close");
  r.ok = true;
  r.stored = at;
  return r;
}

SpillRead read_spill_file(const std::string& path) {
  SpillRead r;
  int fd = -1;
  auto fail = [&](const std::string& why) {
    r.ok = false;
    r.error = "cannot read spill file " + path + ": " + why;
    if (fd >= 0) ::close(fd);
    return std::move(r);
  };
  auto sys = [&] { return std::string(errno == 0 ? "it is shorter than its index says" : std::strerror(errno)); };
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(std::strerror(errno));
  const std::uint64_t file_size = static_cast<std::uint64_t>(st.st_size);
  Head head{};
  if (!pread_all(fd, &head, sizeof head, 0)) return fail(sys());
  if (std::memcmp(head.magic, kMagic, sizeof kMagic) != 0) return fail("not a dtask spill file");
  if (head.parts == 0 || head.parts > kMaxParts) return fail("corrupt index");
  std::vector<IndexEntry> index(head.parts);
  if (!pread_all(fd, index.data(), index.size() * sizeof(IndexEntry), sizeof head)) return fail(sys());
  // The index must add up to the file exactly before any size is trusted for an allocation.
  std::uint64_t total_stored = sizeof head + index.size() * sizeof(IndexEntry), frames_bytes = 0;
  for (const IndexEntry& e : index) {
    if (e.codec != kCodecNone && e.codec != kCodecLz4) return fail("unknown codec");
    if (e.codec == kCodecNone && e.raw != e.stored) return fail("corrupt index");
    if (e.codec == kCodecLz4 && !spill_compression_available()) return fail("compressed, and lz4 is not built in");
    if (e.stored > file_size || e.raw > e.stored * 256 + kSpillBlock) return fail("corrupt index");
    total_stored += e.stored;
  }
  if (total_stored != file_size) return fail("its size does not match its index");
  for (std::size_t i = 1; i < index.size(); ++i) frames_bytes += align_up(index[i].raw);
  // One buffer for every frame, not zero-filled (each byte is read into it).
  std::shared_ptr<std::byte[]> buffer(frames_bytes ? new std::byte[frames_bytes] : nullptr);
  std::uint64_t offset = sizeof head + index.size() * sizeof(IndexEntry);
  std::size_t in_buffer = 0;
  std::vector<char> block;
  r.payload.frames.reserve(index.size() - 1);
  for (std::size_t i = 0; i < index.size(); ++i) {
    const IndexEntry& e = index[i];
    std::byte* dest = nullptr;
    if (i == 0) {
      r.payload.header.resize(e.raw);
      dest = reinterpret_cast<std::byte*>(r.payload.header.data());
    } else {
      dest = buffer.get() + in_buffer;
    }
    if (e.codec == kCodecNone) {
      if (e.raw > 0 && !pread_all(fd, dest, e.raw, offset)) return fail(sys());
    } else {
#ifdef DTASK_HAVE_LZ4
      std::uint64_t got = 0, pos = offset;
      const std::uint64_t end = offset + e.stored;
      while (got < e.raw) {
        std::uint32_t c = 0;
        if (pos + 4 > end || !pread_all(fd, &c, 4, pos)) return fail("corrupt compressed block");
        pos += 4;
        const std::uint64_t want = std::min<std::uint64_t>(kSpillBlock, e.raw - got);
        if (c == 0 || pos + c > end || c > static_cast<std::uint32_t>(LZ4_compressBound(static_cast<int>(kSpillBlock))))
          return fail("corrupt compressed block");
        block.resize(c);
        if (!pread_all(fd, block.data(), c, pos)) return fail(sys());
        pos += c;
        const int n = LZ4_decompress_safe(block.data(), reinterpret_cast<char*>(dest + got), static_cast<int>(c),
                                          static_cast<int>(want));
        if (n < 0 || static_cast<std::uint64_t>(n) != want) return fail("corrupt compressed block");
        got += want;
      }
      if (pos != end) return fail("corrupt compressed block");
#endif
    }
    offset += e.stored;
    if (i > 0) {
      r.payload.frames.emplace_back(std::shared_ptr<const void>(buffer, buffer.get()), dest, e.raw);
      in_buffer += align_up(e.raw);
    }
  }
  ::close(fd);
  r.ok = true;
  return r;
}

// ---- the I/O thread ----

SpillFiles::SpillFiles(std::string directory, bool compress, std::function<void()> on_done)
    : dir_(std::move(directory)), compress_(compress), on_done_(std::move(on_done)), thread_([this] { run(); }) {}

SpillFiles::~SpillFiles() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    ops_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

std::string SpillFiles::path_of(std::uint64_t id) const { return dir_ + "/" + std::to_string(id) + ".spill"; }

void SpillFiles::push(Op op) {
  {
    std::lock_guard lock(mutex_);
    ops_.push_back(std::move(op));
  }
  cv_.notify_one();
}

void SpillFiles::write(std::uint64_t id, std::uint64_t tag, std::shared_ptr<const Payload> payload) {
  push(Op{Op::Kind::write, id, tag, std::move(payload)});
}
void SpillFiles::read(std::uint64_t id, std::uint64_t tag) { push(Op{Op::Kind::read, id, tag, nullptr}); }
void SpillFiles::remove(std::uint64_t id) { push(Op{Op::Kind::remove, id, 0, nullptr}); }

std::vector<SpillDone> SpillFiles::take_completions() {
  std::lock_guard lock(mutex_);
  std::vector<SpillDone> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
  done_.clear();
  return out;
}

void SpillFiles::run() {
  while (true) {
    Op op;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !ops_.empty(); });
      if (stop_) return;
      op = std::move(ops_.front());
      ops_.pop_front();
    }
    const std::string path = path_of(op.id);
    SpillDone d;
    d.id = op.id;
    d.tag = op.tag;
    if (op.kind == Op::Kind::remove) {
      ::unlink(path.c_str());
      continue;
    }
    if (op.kind == Op::Kind::write) {
      d.kind = SpillDone::Kind::written;
      auto w = write_spill_file(path, *op.payload, compress_);
      op.payload.reset();  // the store drops its copy when it hears: this one must be gone first
      d.ok = w.ok;
      d.stored = w.stored;
      d.error = std::move(w.error);
    } else {
      d.kind = SpillDone::Kind::read;
      auto rd = read_spill_file(path);
      ::unlink(path.c_str());
      d.ok = rd.ok;
      if (rd.ok) d.payload = std::make_shared<const Payload>(std::move(rd.payload));
      d.error = std::move(rd.error);
    }
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      done_.push_back(std::move(d));
    }
    on_done_();
  }
}

}  // namespace dtask::worker
