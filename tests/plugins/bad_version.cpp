// A plugin built for a future API version: the runtime must refuse it with a clear message.
#include <dtask/plugin_abi.h>

extern "C" __attribute__((visibility("default"))) const dtask_plugin_v1* dtask_plugin_descriptor_v1(void) {
  static const dtask_plugin_v1 d = {DTASK_PLUGIN_MAGIC, DTASK_PLUGIN_API_VERSION + 1, 0, 0, "future", 0, nullptr};
  return &d;
}
