// glibc malloc tuning: large buffers on transparent huge pages, and giving freed memory back.
#pragma once

namespace dtask {

// Why: a worker receiving a 64 MiB result spends about half its time in page faults on the
// buffer libzmq mallocs for it (one fault and one zeroed 4 KiB page per 4 KiB received). With
// glibc's `glibc.malloc.hugetlb=1`, malloc advises large mappings as huge-page eligible and the
// same transfer takes about half as long. glibc reads tunables only at start-up, so this
// re-executes the program (same pid, argv and environment plus the tunable) when
//  - transparent huge pages are in `madvise` mode (in `always` mode they are already used;
//    in `never` mode the tunable does nothing),
//  - GLIBC_TUNABLES does not mention glibc.malloc.hugetlb already (so it runs at most once and
//    an explicit user setting wins), and
//  - DTASK_HUGEPAGES is not "0" (the opt-out).
// Call it first thing in main(), before any thread, file or MPI call. If the exec fails, the
// program simply goes on as it is.
void reexec_with_hugepage_malloc(char** argv);

// Returns freed heap memory to the OS (glibc's malloc_trim). Why a wrapper: under ASan or TSan
// malloc is the sanitizer's, glibc's arenas were never set up, and malloc_trim reads them and
// crashes; there it does nothing.
void trim_malloc();

}  // namespace dtask
