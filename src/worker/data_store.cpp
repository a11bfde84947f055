// The worker's results in memory or on disk, in LRU order: pure bookkeeping (see data_store.hpp).
#include "worker/data_store.hpp"

namespace dtask::worker {

void DataStore::to_memory(std::uint64_t id, Entry& e) {
  e.where = Where::memory;
  e.lru = lru_.insert(lru_.end(), id);
  memory_bytes_ += e.nbytes;
}

void DataStore::leave_memory(Entry& e) {
  lru_.erase(e.lru);
  memory_bytes_ -= e.nbytes;
}

void DataStore::put(std::uint64_t id, std::shared_ptr<const Payload> data) {
  if (auto it = entries_.find(id); it != entries_.end()) erase(id);
  Entry& e = entries_[id];
  e.nbytes = data->nbytes();
  e.data = std::move(data);
  to_memory(id, e);
}

const std::shared_ptr<const Payload>* DataStore::get(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return nullptr;
  Entry& e = it->second;
  if (e.where == Where::memory) lru_.splice(lru_.end(), lru_, e.lru);
  return e.data ? &e.data : nullptr;
}

const DataStore::Entry* DataStore::find(std::uint64_t id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<DataStore::Entry> DataStore::erase(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  Entry& e = it->second;
  switch (e.where) {
    case Where::memory: leave_memory(e); break;
    case Where::writing: writing_bytes_ -= e.nbytes; break;
    case Where::reading:
      reading_bytes_ -= e.nbytes;
      [[fallthrough]];
    case Where::disk:
      disk_bytes_ -= e.stored;
      --disk_count_;
      break;
  }
  Entry gone = std::move(e);
  entries_.erase(it);
  return gone;
}

bool DataStore::start_write(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::memory) return false;
  Entry& e = it->second;
  leave_memory(e);
  e.where = Where::writing;
  e.tag = next_tag_++;
  writing_bytes_ += e.nbytes;
  return true;
}

std::vector<std::uint64_t> DataStore::pick_to_spill(std::uint64_t bytes) {
  std::vector<std::uint64_t> picked;
  std::uint64_t got = 0;
  for (auto it = lru_.begin(); it != lru_.end() && got < bytes;) {
    const std::uint64_t id = *it++;  // start_write unlinks it
    const Entry& e = entries_.at(id);
    // A job (or a deferred reply) holds it too: writing it out would free nothing now.
    if (e.data.use_count() > 1 || e.nbytes == 0) continue;
    got += e.nbytes;
    start_write(id);
    picked.push_back(id);
  }
  return picked;
}

std::optional<std::uint64_t> DataStore::written(std::uint64_t id, std::uint64_t tag, std::uint64_t stored) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::writing || it->second.tag != tag) return std::nullopt;
  Entry& e = it->second;
  writing_bytes_ -= e.nbytes;
  e.where = Where::disk;
  e.data.reset();
  e.stored = stored;
  disk_bytes_ += stored;
  ++disk_count_;
  return e.nbytes;
}

bool DataStore::write_failed(std::uint64_t id, std::uint64_t tag) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::writing || it->second.tag != tag) return false;
  Entry& e = it->second;
  writing_bytes_ -= e.nbytes;
  to_memory(id, e);
  lru_.splice(lru_.begin(), lru_, e.lru);  // first in line when spilling is tried again
  return true;
}

std::uint64_t DataStore::start_read(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::disk) return 0;
  it->second.where = Where::reading;
  it->second.tag = next_tag_++;
  reading_bytes_ += it->second.nbytes;
  return it->second.tag;
}

bool DataStore::read_back(std::uint64_t id, std::uint64_t tag, std::shared_ptr<const Payload> data) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::reading || it->second.tag != tag) return false;
  Entry& e = it->second;
  disk_bytes_ -= e.stored;
  --disk_count_;
  reading_bytes_ -= e.nbytes;
  e.stored = 0;
  e.data = std::move(data);
  to_memory(id, e);
  return true;
}

bool DataStore::read_failed(std::uint64_t id, std::uint64_t tag) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.where != Where::reading || it->second.tag != tag) return false;
  erase(id);
  return true;
}

}  // namespace dtask::worker
