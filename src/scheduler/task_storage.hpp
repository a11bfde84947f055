// Compact storage behind the scheduler's task table: small lists, a byte arena, flat hash tables.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dtask::scheduler {

inline constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;

// The deletion step shared by the flat tables below (linear probing in a power-of-two table, no
// tombstones): empties cell `i` and pulls later members of its probe run back over the hole when
// the hole lies between their home cell and where they sit, so every lookup still finds them.
template <class E, class Home, class IsEmpty>
void probe_erase(std::vector<E>& table, std::size_t i, E empty, Home&& home, IsEmpty&& is_empty) {
  const std::size_t mask = table.size() - 1;
  for (std::size_t j = (i + 1) & mask; !is_empty(table[j]); j = (j + 1) & mask) {
    std::size_t h = home(table[j]);
    bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
    if (movable) {
      table[i] = table[j];
      i = j;
    }
  }
  table[i] = empty;
}

// A list of 4-byte ids holding up to two in place and spilling to the heap beyond. A task's
// dependents, holders and wanting clients are almost always 0-2 long; a std::vector would cost
// 24 bytes plus a separate allocation of at least 32 bytes for a single element.
template <class T>
class SmallList {
  static_assert(sizeof(T) == 4 && std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  SmallList() = default;
  SmallList(const SmallList& o) { assign(o.begin(), o.end()); }
  SmallList(SmallList&& o) noexcept { take(o); }
  SmallList& operator=(const SmallList& o) {
    if (this != &o) {
      size_ = 0;
      assign(o.begin(), o.end());
    }
    return *this;
  }
  SmallList& operator=(SmallList&& o) noexcept {
    if (this != &o) {
      free_heap();
      take(o);
    }
    return *this;
  }
  ~SmallList() { free_heap(); }

  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T& back() { return data()[size_ - 1]; }

  void push_back(T v) {
    if (size_ == cap_) grow();
    data()[size_++] = v;
  }
  void pop_back() { --size_; }
  void clear() { size_ = 0; }
  template <class It>
  void assign(It first, It last) {
    size_ = 0;
    for (; first != last; ++first) push_back(*first);
  }
  void assign_one(T v) {
    data()[0] = v;  // capacity is never below kInline
    size_ = 1;
  }
  bool contains(T v) const { return std::find(begin(), end(), v) != end(); }
  // Removes the first `v`, keeping the order of the rest; false if absent.
  bool erase_first(T v) {
    T* it = std::find(begin(), end(), v);
    if (it == end()) return false;
    std::copy(it + 1, end(), it);
    --size_;
    return true;
  }
  // Removes every `v`, keeping the order of the rest.
  void erase_all(T v) { size_ = static_cast<std::uint32_t>(std::remove(begin(), end(), v) - begin()); }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

 private:
  static constexpr std::uint32_t kInline = 2;
  bool on_heap() const { return cap_ > kInline; }
  T* data() { return on_heap() ? store_.heap : store_.local; }
  const T* data() const { return on_heap() ? store_.heap : store_.local; }
  void grow() {
    std::uint32_t cap = cap_ * 2;
    T* p = new T[cap];
    const T* old = data();
    for (std::uint32_t i = 0; i < size_; ++i) p[i] = old[i];
    free_heap();
    store_.heap = p;
    cap_ = cap;
  }
  void free_heap() {
    if (on_heap()) delete[] store_.heap;
    cap_ = kInline;
  }
  void take(SmallList& o) {
    size_ = o.size_;
    cap_ = o.cap_;
    if (o.on_heap()) {
      store_.heap = o.store_.heap;
    } else {
      for (std::uint32_t i = 0; i < o.size_; ++i) store_.local[i] = o.store_.local[i];
    }
    o.size_ = 0;
    o.cap_ = kInline;
  }

  std::uint32_t size_ = 0;
  std::uint32_t cap_ = kInline;
  union Store {
    Store() : heap(nullptr) {}
    T local[kInline];
    T* heap;
  } store_;
};

// Bytes that live exactly as long as their task (key, dependency slots, encoded arguments), bumped
// out of shared chunks: one allocation per 32 KiB instead of two or three per task. Each chunk
// counts the tasks using it and is freed with the last one. Chunks never move, so views of a
// task's bytes stay valid until that task releases them.
class TaskArena {
 public:
  struct Ref {
    std::uint32_t chunk = kNoSlot;
    std::uint32_t offset = 0;
    bool empty() const { return chunk == kNoSlot; }
  };
  static constexpr std::uint32_t kChunkBytes = 32 * 1024;

  // Reserves `size` bytes, 4-byte aligned.
  Ref allocate(std::size_t size) {
    if (size > kChunkBytes / 4) {
      // Big blobs (long keys, big inline arguments) get a chunk of their own, freed with them.
      std::uint32_t c = new_chunk(size);
      chunks_[c].used = static_cast<std::uint32_t>(size);
      chunks_[c].live = 1;
      return {c, 0};
    }
    std::uint32_t aligned = current_ == kNoSlot ? 0 : (chunks_[current_].used + 3u) & ~3u;
    if (current_ == kNoSlot || aligned + size > chunks_[current_].size) {
      current_ = new_chunk(kChunkBytes);
      aligned = 0;
    }
    Chunk& ch = chunks_[current_];
    ch.used = aligned + static_cast<std::uint32_t>(size);
    ++ch.live;
    return {current_, aligned};
  }
  char* data(Ref r) { return chunks_[r.chunk].bytes.get() + r.offset; }
  const char* data(Ref r) const { return chunks_[r.chunk].bytes.get() + r.offset; }
  // One task is done with its bytes.
  void release(Ref r) {
    if (r.empty()) return;
    Chunk& ch = chunks_[r.chunk];
    if (--ch.live != 0) return;
    if (r.chunk == current_) {
      ch.used = 0;  // still the chunk being filled: start it over
      return;
    }
    ch.bytes.reset();
    ch.size = ch.used = 0;
    free_chunks_.push_back(r.chunk);
  }
  std::size_t chunks_held() const { return chunks_.size() - free_chunks_.size(); }

 private:
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    std::uint32_t size = 0;
    std::uint32_t used = 0;
    std::uint32_t live = 0;  // tasks with bytes here
  };
  std::uint32_t new_chunk(std::size_t size) {
    std::uint32_t c;
    if (!free_chunks_.empty()) {
      c = free_chunks_.back();
      free_chunks_.pop_back();
    } else {
      c = static_cast<std::uint32_t>(chunks_.size());
      chunks_.emplace_back();
    }
    chunks_[c].bytes = std::make_unique_for_overwrite<char[]>(size);
    chunks_[c].size = static_cast<std::uint32_t>(size);
    chunks_[c].used = 0;
    chunks_[c].live = 0;
    return c;
  }

  std::vector<Chunk> chunks_;
  std::vector<std::uint32_t> free_chunks_;
  std::uint32_t current_ = kNoSlot;
};

// Key -> slot by open addressing (linear probing, backward-shift deletion, no tombstones) over
// 8-byte entries: the slot and 32 bits of the key's hash. The keys themselves stay in the arena
// and are compared through `key_of(slot)`, so the index holds no copy of them. Costs 8-16 bytes a
// task, where std::unordered_map spent ~40 plus a node allocation.
class KeyIndex {
 public:
  static std::uint32_t hash(std::string_view key) {
    std::size_t h = std::hash<std::string_view>{}(key);
    return static_cast<std::uint32_t>(h ^ (h >> 32));
  }

  template <class KeyOf>
  std::uint32_t find(std::string_view key, KeyOf&& key_of) const {
    if (size_ == 0) return kNoSlot;
    std::uint32_t h = hash(key);
    for (std::size_t i = h & mask(); table_[i].slot != kNoSlot; i = (i + 1) & mask()) {
      if (table_[i].hash == h && key_of(table_[i].slot) == key) return table_[i].slot;
    }
    return kNoSlot;
  }
  // `key` must not be in the index yet.
  void insert(std::string_view key, std::uint32_t slot) {
    if ((size_ + 1) * 8 > table_.size() * 7) rehash(std::max<std::size_t>(16, table_.size() * 2));
    place({slot, hash(key)});
    ++size_;
  }
  // Removes the entry of `slot`, filed under `key`.
  void erase(std::string_view key, std::uint32_t slot) {
    if (size_ == 0) return;
    std::uint32_t h = hash(key);
    std::size_t i = h & mask();
    for (; table_[i].slot != slot; i = (i + 1) & mask()) {
      if (table_[i].slot == kNoSlot) return;
    }
    probe_erase(
        table_, i, Entry{}, [&](const Entry& e) { return e.hash & mask(); },
        [](const Entry& e) { return e.slot == kNoSlot; });
    --size_;
    // Give memory back after a big graph is forgotten (hysteresis: grows at 7/8, shrinks at 1/8).
    if (table_.size() > 1024 && size_ * 8 < table_.size()) rehash(table_.size() / 2);
  }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return table_.size(); }

 private:
  struct Entry {
    std::uint32_t slot = kNoSlot;
    std::uint32_t hash = 0;
  };
  std::size_t mask() const { return table_.size() - 1; }
  void place(Entry e) {
    std::size_t i = e.hash & mask();
    while (table_[i].slot != kNoSlot) i = (i + 1) & mask();
    table_[i] = e;
  }
  void rehash(std::size_t capacity) {
    std::vector<Entry> old(capacity);
    old.swap(table_);
    for (const Entry& e : old) {
      if (e.slot != kNoSlot) place(e);
    }
  }

  std::vector<Entry> table_;  // size is a power of two
  std::size_t size_ = 0;
};

// A set of task slots per worker (what it is processing, what it holds): open addressing with
// linear probing and backward-shift deletion (probe_erase), Fibonacci hashing. Replaces std::unordered_set<std::uint32_t>, whose node per
// entry (~40 bytes, one allocation) made every task start and finish pay a malloc and a free
// and a cache miss; at 1,000 workers those sets were the scheduler's hottest data. Slots are
// < 0xFFFFFFFF (kNoSlot), which marks an empty cell.
class SlotSet {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::uint32_t;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::uint32_t*;
    using reference = std::uint32_t;
    Iterator() = default;
    Iterator(const std::uint32_t* p, const std::uint32_t* end) : p_(p), end_(end) { skip(); }
    std::uint32_t operator*() const { return *p_; }
    Iterator& operator++() {
      ++p_;
      skip();
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& o) const { return p_ == o.p_; }
    bool operator!=(const Iterator& o) const { return p_ != o.p_; }

   private:
    void skip() {
      while (p_ != end_ && *p_ == kEmpty) ++p_;
    }
    const std::uint32_t* p_ = nullptr;
    const std::uint32_t* end_ = nullptr;
  };

  bool insert(std::uint32_t slot) {
    if ((size_ + 1) * 4 > table_.size() * 3) grow();
    std::size_t i = home(slot);
    while (table_[i] != kEmpty) {
      if (table_[i] == slot) return false;
      i = (i + 1) & mask_;
    }
    table_[i] = slot;
    ++size_;
    return true;
  }

  bool contains(std::uint32_t slot) const { return find(slot) != kNotFound; }

  bool erase(std::uint32_t slot) {
    std::size_t i = find(slot);
    if (i == kNotFound) return false;
    probe_erase(
        table_, i, kEmpty, [this](std::uint32_t s) { return home(s); }, [](std::uint32_t s) { return s == kEmpty; });
    --size_;
    if (size_ == 0 && table_.size() > 64) clear();  // a drained worker gives its memory back
    return true;
  }

  void clear() {
    std::vector<std::uint32_t>().swap(table_);
    size_ = 0;
    mask_ = 0;
    shift_ = 64;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Iterator begin() const { return {table_.data(), table_.data() + table_.size()}; }
  Iterator end() const { return {table_.data() + table_.size(), table_.data() + table_.size()}; }

 private:
  static constexpr std::uint32_t kEmpty = kNoSlot;
  static constexpr std::size_t kNotFound = static_cast<std::size_t>(-1);

  std::size_t home(std::uint32_t slot) const {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(slot) * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
  }
  std::size_t find(std::uint32_t slot) const {
    if (table_.empty()) return kNotFound;
    std::size_t i = home(slot);
    while (table_[i] != kEmpty) {
      if (table_[i] == slot) return i;
      i = (i + 1) & mask_;
    }
    return kNotFound;
  }
  void grow() {
    std::vector<std::uint32_t> old;
    old.swap(table_);
    std::size_t cap = old.empty() ? 8 : old.size() * 2;
    table_.assign(cap, kEmpty);
    mask_ = cap - 1;
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < cap) ++bits;
    shift_ = 64 - bits;
    for (auto s : old) {
      if (s == kEmpty) continue;
      std::size_t i = home(s);
      while (table_[i] != kEmpty) i = (i + 1) & mask_;
      table_[i] = s;
    }
  }

  std::vector<std::uint32_t> table_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace dtask::scheduler
