"""The settlement engine: intake, pricing, allocation, distribution, exports."""

import os

# polars allocates through its own jemalloc, which reads `_RJEM_MALLOC_CONF` once, when
# polars loads (polars puts its own defaults before the value it finds there, so these
# win); this package sets it first (the `settle` command imports it before polars).
# One arena instead of eight: the few threads of a 2-core machine shared one arena without
# a measurable cost, and freed pages no longer wait in the arena of the thread that freed
# them. Purged pages are returned at once (MADV_DONTNEED) instead of being marked free for
# a second (MADV_FREE), during which they still count in the process's memory. A 100M-row
# month's settlement peaked at 4.35 GiB against 4.70 GiB, in 521 s against 508 s.
# A value already in the environment is kept.
ALLOCATOR_CONF = "narenas:1,muzzy_decay_ms:0"
os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR_CONF)
