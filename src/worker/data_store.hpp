// The worker's results by task id, each in memory or on disk (or on its way), in least-recently-used order; pure bookkeeping.
//
// Who owns it: WorkerState (the loop's thread only). It does no I/O and reads no clock: the
// spill files (spill_files.hpp) are written and read on their own thread, and what this store
// is told about them (written, read back, failed) arrives as calls from the core.
// States: memory (payload held) -> writing (payload still held, a write is out) -> disk (only
// the file) -> reading (a read is out) -> memory again. Every write or read carries a tag
// (a fresh number), so a completion for a result that was released and stored again meanwhile
// is told apart from the current one.
// Bytes: memory_bytes() counts results in state memory, writing_bytes() those being written
// (still in memory until their file is done), disk_bytes() the files' sizes (as stored).
// LRU: put() and get() touch; pick_to_spill() takes from the least recently used end, skipping
// a result some job still holds (its shared_ptr has other owners: spilling it would free nothing).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <dtask/codec.hpp>

namespace dtask::worker {

class DataStore {
 public:
  enum class Where : std::uint8_t { memory, writing, disk, reading };
  struct Entry {
    std::shared_ptr<const Payload> data;  // set in memory and writing
    std::uint64_t nbytes = 0;             // the payload's size
    std::uint64_t stored = 0;             // the file's size (disk, reading)
    std::uint64_t tag = 0;                // of the write or read out for it
    Where where = Where::memory;
    std::list<std::uint64_t>::iterator lru;  // valid in memory only
  };

  // Stores a result in memory (replacing one with the same id: the caller removes its file if
  // the old one returned by erase() had one). Touches it.
  void put(std::uint64_t id, std::shared_ptr<const Payload> data);
  // The result if its payload is in memory (memory or writing), touching it; null otherwise.
  const std::shared_ptr<const Payload>* get(std::uint64_t id);
  const Entry* find(std::uint64_t id) const;
  bool contains(std::uint64_t id) const { return entries_.count(id) != 0; }
  // Removes it; returns what it was (nullopt if absent): a file to delete if it was not in memory.
  std::optional<Entry> erase(std::uint64_t id);

  // Up to `bytes` (or just over) of results in memory, least recently used first, now writing
  // with a fresh tag each; returns their ids.
  std::vector<std::uint64_t> pick_to_spill(std::uint64_t bytes);
  // This one result, if in memory: now writing (a fresh tag). False if not in memory.
  bool start_write(std::uint64_t id);
  // A write finished: writing -> disk (the payload dropped; its bytes returned) if the tag
  // matches; nullopt otherwise (released or replaced meanwhile: nothing changes).
  std::optional<std::uint64_t> written(std::uint64_t id, std::uint64_t tag, std::uint64_t stored);
  // A write failed: writing -> memory again (least recently used end). False if the tag is stale.
  bool write_failed(std::uint64_t id, std::uint64_t tag);
  // disk -> reading with a fresh tag; returns it (0 if the result is not on disk).
  std::uint64_t start_read(std::uint64_t id);
  // A read finished: reading -> memory (touched). False if the tag is stale.
  bool read_back(std::uint64_t id, std::uint64_t tag, std::shared_ptr<const Payload> data);
  // A read failed: the result is lost (erased). False if the tag is stale.
  bool read_failed(std::uint64_t id, std::uint64_t tag);

  std::uint64_t memory_bytes() const { return memory_bytes_; }
  std::uint64_t writing_bytes() const { return writing_bytes_; }
  std::uint64_t held_bytes() const { return memory_bytes_ + writing_bytes_; }  // payloads in memory
  std::uint64_t disk_bytes() const { return disk_bytes_; }
  std::uint64_t reading_bytes() const { return reading_bytes_; }  // payload bytes of the reads out
  std::uint64_t disk_count() const { return disk_count_; }  // on disk or being read
  std::size_t size() const { return entries_.size(); }

 private:
  void to_memory(std::uint64_t id, Entry& e);  // links into the LRU list (most recent end)
  void leave_memory(Entry& e);                 // unlinks from it
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::list<std::uint64_t> lru_;  // ids in state memory, least recently used first
  std::uint64_t memory_bytes_ = 0, writing_bytes_ = 0, disk_bytes_ = 0, disk_count_ = 0, reading_bytes_ = 0;
  std::uint64_t next_tag_ = 1;
};

}  // namespace dtask::worker
