/*
 * libzstd for the pack module, its contexts' memory on huge pages.  A
 * decompression context's window (up to a frame's 8 MiB) and a compression
 * context's tables are fresh memory each time one is made: in 4 KiB pages
 * that is a fault per page, 10 us each on the VMs this runs on, which made
 * the decoder's first pass over a stored frame cost more than encoding it
 * again (issue 15).  Include this instead of <zstd.h>.
 */
#ifndef CTXPACK_ZSTD_INTERNAL_H
#define CTXPACK_ZSTD_INTERNAL_H

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem (libzstd is linked statically) */
#include <zstd.h>

/* As ZSTD_createDStream, with memory from xmalloc_big (a window is used
 * whole by a frame of ours).  As ZSTD_createCCtx, from xmalloc_big when
 * huge (a worker whose buffers are on huge pages, pack_worker.huge: its
 * tables, about 1 MiB at level 3, then take 2 MiB, so a pool of many
 * workers keeps malloc's). */
ZSTD_CCtx *pack_zstd_cctx(int huge);
ZSTD_DStream *pack_zstd_dstream(void);

#endif
