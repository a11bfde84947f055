/* The versioned C struct every dtask plugin exports; checked before any task is called. */
#ifndef DTASK_PLUGIN_ABI_H
#define DTASK_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "dTSK": a plugin whose struct does not start with this is not a dtask plugin. */
#define DTASK_PLUGIN_MAGIC 0x6454534Bu
/* Bumped whenever the layout of the structs below or of dtask::detail::Call changes. */
#define DTASK_PLUGIN_API_VERSION 1u

/* Opaque call frame owned by the runtime (a dtask::detail::Call). */
typedef struct dtask_call dtask_call;

typedef struct dtask_task_v1 {
  const char* name;                 /* the name clients submit */
  const void* fn;                   /* the user's function, also its identity on the client side */
  uint32_t arity;
  void (*invoke)(dtask_call* call); /* never throws: errors land in the call frame */
} dtask_task_v1;

typedef struct dtask_plugin_v1 {
  uint32_t magic;
  uint32_t api_version;
  uint32_t call_frame_size;         /* sizeof(dtask::detail::Call) as the plugin saw it */
  uint32_t reserved;
  const char* plugin_name;
  size_t n_tasks;
  const dtask_task_v1* tasks;
} dtask_plugin_v1;

/* The symbols a plugin exports (DTASK_TASKS and DTASK_MAIN define them). */
#define DTASK_PLUGIN_SYMBOL "dtask_plugin_descriptor_v1"
#define DTASK_MAIN_SYMBOL "dtask_plugin_main_v1"

#ifdef __cplusplus
}
#endif

#endif
