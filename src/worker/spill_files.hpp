// The worker's spill files: results written to and read back from its spill directory on one I/O thread of its own.
//
// Who owns what: the loop's owner calls write/read/remove and take_completions (the queue of
// requests and the queue of completions are guarded by `mutex_`); the I/O thread alone touches
// the files. Requests run in the order they were made (one thread, one FIFO), so a remove
// queued after a write of the same id removes the file that write made. When a request is done
// its completion is queued and `on_done` is called on the I/O thread (the loop passes its
// wakeup), as the Executor does with tasks.
// A write or read error is a completion with ok = false and the reason (ENOSPC, EIO, a corrupt
// file), never an exception or a crash; a failed write leaves no file behind.
// File format (one file per result, `<dir>/<id>.spill`): a fixed head (magic, part count), an
// index of parts (the header string, then each frame: raw size, stored size, codec), then the
// parts' bytes. A compressed part is a sequence of blocks of kSpillBlock raw bytes, each as a
// 4-byte compressed size and the lz4 block. Compression is used for a payload only when lz4 is
// built in, `compress` is on, and a sample (its first kSpillSample bytes) shrinks below 80 %.
// Reading puts every frame of a result into one buffer (each frame 64-byte aligned) that the
// frames share: a large result is read from its file straight into its final place.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <dtask/codec.hpp>

namespace dtask::worker {

inline constexpr std::size_t kSpillBlock = 1 << 20;    // raw bytes per compressed block
inline constexpr std::size_t kSpillSample = 64 << 10;  // bytes tried to decide on compression

// Whether compression was built in (lz4 found by meson).
bool spill_compression_available();

// ---- synchronous, on the calling thread: the I/O thread's work, and a benchmark's API ----
struct SpillWrite {
  bool ok = false;
  std::uint64_t stored = 0;  // the file's size
  bool compressed = false;
  std::string error;         // "cannot write spill file /d/7.spill: No space left on device"
};
// Writes `p` to `path` (replacing it); on failure removes what it wrote.
SpillWrite write_spill_file(const std::string& path, const Payload& p, bool compress);
struct SpillRead {
  bool ok = false;
  Payload payload;
  std::string error;  // "cannot read spill file /d/7.spill: ..." (missing, short, corrupt)
};
SpillRead read_spill_file(const std::string& path);

// ---- on the I/O thread ----
struct SpillDone {
  enum class Kind : std::uint8_t { written, read };
  Kind kind = Kind::written;
  std::uint64_t id = 0;
  std::uint64_t tag = 0;  // as given to write/read (DataStore's)
  bool ok = false;
  std::uint64_t stored = 0;                // written: the file's size
  std::shared_ptr<const Payload> payload;  // read: the result
  std::string error;
};

class SpillFiles {
 public:
  // `directory` exists (SpillDirectory); `on_done` runs on the I/O thread after each completion.
  SpillFiles(std::string directory, bool compress, std::function<void()> on_done);
  ~SpillFiles();  // finishes the request under way, drops the rest, joins the thread
  SpillFiles(const SpillFiles&) = delete;
  SpillFiles& operator=(const SpillFiles&) = delete;

  // Writes the result to its file; the payload is let go of before the completion is queued.
  void write(std::uint64_t id, std::uint64_t tag, std::shared_ptr<const Payload> payload);
  // Reads it back; the file is deleted once read (the result is in memory again).
  void read(std::uint64_t id, std::uint64_t tag);
  // Deletes its file (no completion; a missing file is fine).
  void remove(std::uint64_t id);
  std::vector<SpillDone> take_completions();
  std::string path_of(std::uint64_t id) const;
  const std::string& directory() const { return dir_; }

 private:
  struct Op {
    enum class Kind : std::uint8_t { write, read, remove } kind;
    std::uint64_t id = 0, tag = 0;
    std::shared_ptr<const Payload> payload;
  };
  void push(Op op);
  void run();
  std::string dir_;
  bool compress_;
  std::function<void()> on_done_;
  std::mutex mutex_;  // guards ops_, done_, stop_
  std::condition_variable cv_;
  std::deque<Op> ops_;
  std::deque<SpillDone> done_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace dtask::worker
