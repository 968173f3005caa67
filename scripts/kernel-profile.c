/* A GPU kernel-time profile for machines without Nsight Systems: a CUDA injection library
 * (loaded by the driver through CUDA_INJECTION64_PATH) that records every kernel, memcpy and
 * memset through CUPTI's activity API and, at process exit, writes one line per kernel name
 * (total GPU ms, calls, share) sorted by total time, plus the span from the first to the
 * last recorded activity, to $DGCOLOR_KERNEL_PROFILE (default kernel-profile.txt).
 *
 *   cc -shared -fPIC -O2 -I<cupti include> -o libkernel_profile.so scripts/kernel-profile.c \
 *      -L<cupti lib> -l:libcupti.so.13       # scripts/gpu-build.sh does this
 *   CUDA_INJECTION64_PATH=$PWD/libkernel_profile.so ./bench --device cuda ...
 *
 * Nothing here changes what the profiled program computes; CUPTI adds a little overhead
 * per launch, so compare the shares, not the absolute times, with an unprofiled run. */
#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF (8u << 20)
#define MAX_NAMES 4096

typedef struct {
    char *name;
    uint64_t ns;
    uint64_t calls;
} Entry;

static Entry entries[MAX_NAMES];
static int n_entries;
static uint64_t first = UINT64_MAX, last;

static void add(const char *name, uint64_t start, uint64_t end) {
    if (start < first) first = start;
    if (end > last) last = end;
    int i = 0;
    while (i < n_entries && strcmp(entries[i].name, name) != 0) ++i;
    if (i == n_entries) {
        if (n_entries == MAX_NAMES) i = MAX_NAMES - 1; /* lump the rest together */
        else entries[n_entries++].name = strdup(name);
    }
    entries[i].ns += end - start;
    entries[i].calls += 1;
}

static void CUPTIAPI requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUF);
    *size = BUF;
    *max_records = 0;
}

static void CUPTIAPI completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
                               size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
        switch (r->kind) {
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)r;
            add(k->name ? k->name : "?", k->start, k->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
            CUpti_ActivityMemcpy6 *m = (CUpti_ActivityMemcpy6 *)r;
            add(m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "[memcpy HtoD]"
                : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "[memcpy DtoH]"
                                                                 : "[memcpy other]",
                m->start, m->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
            CUpti_ActivityMemset4 *m = (CUpti_ActivityMemset4 *)r;
            add("[memset]", m->start, m->end);
            break;
        }
        default:
            break;
        }
    }
    free(buffer);
}

static int by_time(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

static void report(void) {
    cuptiActivityFlushAll(1);
    const char *path = getenv("DGCOLOR_KERNEL_PROFILE");
    FILE *f = fopen(path ? path : "kernel-profile.txt", "w");
    if (!f) return;
    uint64_t total = 0;
    for (int i = 0; i < n_entries; ++i) total += entries[i].ns;
    qsort(entries, n_entries, sizeof(Entry), by_time);
    fprintf(f, "span %.1f ms (first to last GPU activity), busy %.1f ms (sum of activities)\n",
            last > first ? (last - first) / 1e6 : 0.0, total / 1e6);
    fprintf(f, "%10s %8s %6s  %s\n", "total_ms", "calls", "share", "name");
    for (int i = 0; i < n_entries; ++i)
        fprintf(f, "%10.2f %8llu %5.1f%%  %.160s\n", entries[i].ns / 1e6,
                (unsigned long long)entries[i].calls, total ? 100.0 * entries[i].ns / total : 0.0,
                entries[i].name);
    fclose(f);
}

int InitializeInjection(void) {
    if (cuptiActivityRegisterCallbacks(requested, completed) != CUPTI_SUCCESS) return 0;
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    atexit(report);
    return 1;
}
