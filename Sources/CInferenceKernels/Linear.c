// Fused quantized products split over the pool (see include/InferenceKernels.h, lf_linear).
#include "InferenceKernels.h"

typedef struct {
    int layout;
    const lf_job *jobs;
    int njobs;
    long blocks, vectors, total_rows, row_block, row_blocks, vector_group;
    const int16_t *q;
    const float *scale, *sums;
} linear_ctx;

// Rows a job occupies in the chunks' row space: whole groups of 16 in the interleaved layout (a
// chunk never splits a group), the rows themselves otherwise.
static long span(const linear_ctx *c, const lf_job *job) {
    return c->layout == LF_LAYOUT_INTERLEAVED ? (job->rows + 15) / 16 * 16 : job->rows;
}

static void run_rows(const linear_ctx *c, const lf_job *job, long r0, long r1, long v0, long v1) {
    long width = c->blocks * 32;
    float *out = job->out + v0 * job->out_stride;
    if (c->layout == LF_LAYOUT_INTERLEAVED) {  // v0 is a multiple of 8: a panel's first vector
        if (r1 > job->rows) r1 = job->rows;
        if (r0 >= r1) return;
        lf_rows_interleaved(job->type, job->weights, r0, r1, job->rows, c->blocks, c->q + v0 * width, c->scale + v0 * c->blocks,
                            c->sums + v0 * c->blocks, v1 - v0, job->bias, out, job->out_stride);
        return;
    }
    lf_rows_i16(job->type, job->weights, r0, r1, c->blocks, c->q + v0 * width, c->scale + v0 * c->blocks,
                c->sums + v0 * c->blocks, v1 - v0, out, job->out_stride);
    if (job->bias) {
        for (long v = 0; v < v1 - v0; v++) for (long r = r0; r < r1; r++) out[v * job->out_stride + r] += job->bias[r];
    }
}

static void linear_chunk(void *context, long chunk) {
    const linear_ctx *c = context;
    long rb = chunk % c->row_blocks, vg = chunk / c->row_blocks;
    long r0 = rb * c->row_block, r1 = r0 + c->row_block < c->total_rows ? r0 + c->row_block : c->total_rows;
    long v0 = vg * c->vector_group, v1 = v0 + c->vector_group < c->vectors ? v0 + c->vector_group : c->vectors;
    long base = 0;
    for (int j = 0; j < c->njobs; j++) {
        const lf_job *job = &c->jobs[j];
        const long rows = span(c, job);
        long lower = r0 > base ? r0 : base, upper = r1 < base + rows ? r1 : base + rows;
        if (lower < upper) run_rows(c, job, lower - base, upper - base, v0, v1);
        base += rows;
    }
}

void lf_linear(int layout, const lf_job *jobs, int njobs, long blocks, const int16_t *q, const float *scale,
               const float *sums, long vectors) {
    linear_ctx c = {.layout = layout, .jobs = jobs, .njobs = njobs, .blocks = blocks, .vectors = vectors, .q = q,
                    .scale = scale, .sums = sums};
    for (int j = 0; j < njobs; j++) c.total_rows += span(&c, &jobs[j]);
    if (c.total_rows == 0 || vectors == 0) return;
    long threads = lf_pool_threads();
    // The vectors one pass over a row's blocks serves (the kernels' register blocking).
    long group = layout == LF_LAYOUT_INTERLEAVED ? 8 : 4;
    c.vector_group = vectors <= group ? vectors : group;
    long groups = (vectors + c.vector_group - 1) / c.vector_group;
    long work = c.total_rows * blocks * 32 * vectors;
    // Below ~64k multiply-adds one thread is faster than any hand-off; otherwise 8 chunks per
    // thread, so a thread the OS preempts delays the product by a small share only (chunks are
    // claimed dynamically). More, smaller chunks cut the weight stream into pieces the prefetcher
    // restarts on: with the interleaved kernels, 32 per thread made a cold 30-layer MLP 1.3–1.6×
    // slower for 1 vector and ~1.2× for 8 than 4–8 per thread (measured with the kernels alone).
    long target = work < 65536 || threads <= 1 ? 1 : 8 * threads;
    c.row_blocks = groups >= target ? 1 : (target + groups - 1) / groups;
    long min_rows = 16;
    if (c.row_blocks > (c.total_rows + min_rows - 1) / min_rows) c.row_blocks = (c.total_rows + min_rows - 1) / min_rows;
    if (c.row_blocks < 1) c.row_blocks = 1;
    c.row_block = (c.total_rows + c.row_blocks - 1) / c.row_blocks;
    if (layout == LF_LAYOUT_INTERLEAVED) c.row_block = (c.row_block + 15) / 16 * 16;  // whole groups
    c.row_blocks = (c.total_rows + c.row_block - 1) / c.row_block;
    lf_pool_run(c.row_blocks * groups, linear_chunk, &c);
}
