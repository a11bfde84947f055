// Strong ID types for tasks, workers and clients, so the three can never be mixed up.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace dtask::protocol {

template <class Tag, class Rep>
struct StrongId {
  Rep value{};
  constexpr auto operator<=>(const StrongId&) const = default;
  std::string str() const { return std::to_string(value); }
};

// A task id packs the scheduler's slot index (low 32 bits) and that slot's generation (high
// 32 bits): a late message about a forgotten task never lands on the slot's next occupant.
using TaskId = StrongId<struct TaskTag, std::uint64_t>;
using WorkerId = StrongId<struct WorkerTag, std::uint32_t>;
using ClientId = StrongId<struct ClientTag, std::uint32_t>;

inline constexpr std::uint32_t slot_of(TaskId id) { return static_cast<std::uint32_t>(id.value); }
inline constexpr std::uint32_t generation_of(TaskId id) { return static_cast<std::uint32_t>(id.value >> 32); }
inline constexpr TaskId make_task_id(std::uint32_t slot, std::uint32_t gen) {
  return TaskId{(static_cast<std::uint64_t>(gen) << 32) | slot};
}

}  // namespace dtask::protocol

template <class Tag, class Rep>
struct std::hash<dtask::protocol::StrongId<Tag, Rep>> {
  std::size_t operator()(const dtask::protocol::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>{}(id.value);
  }
};
