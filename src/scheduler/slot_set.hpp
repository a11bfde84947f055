// A set of task slots per worker (what it is processing, what it holds): a flat hash table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

namespace dtask::scheduler {

// Open addressing with linear probing and backward-shift deletion (no tombstones), Fibonacci
// hashing into a power-of-two table. Replaces std::unordered_set<std::uint32_t>, whose node per
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
    // Backward shift: pull later members of the probe run into the hole when the hole lies
    // between their home cell and where they sit, so lookups never meet a gap too early.
    std::size_t j = i;
    while (true) {
      j = (j + 1) & mask_;
      if (table_[j] == kEmpty) break;
      std::size_t h = home(table_[j]);
      bool stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
      if (!stays) {
        table_[i] = table_[j];
        i = j;
      }
    }
    table_[i] = kEmpty;
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
  static constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
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
