// A persistent worker pool for the decode kernels (see include/InferenceKernels.h, lf_pool_run).
//
// Why not DispatchQueue.concurrentPerform: a decode step of SmolLM2 runs ~150 parallel regions
// (4 fused products + attention per layer, the head), each a few µs to a few hundred µs long; a
// dispatch round-trip per region, and a barrier that waits for a worker the OS has not scheduled
// yet, cost a large share of the step on a loaded 2-core machine.
//
// Design: the caller publishes a job (function, context, chunk count) under a new generation and
// then claims chunks itself; workers spin briefly on the generation (consecutive regions of one
// step are µs apart), then sleep on a condition variable. Chunks are claimed one at a time with a
// compare-and-swap on one 64-bit word (generation | chunk count | next index), so a worker that
// wakes late can never run a chunk of a finished job, and the caller never waits for a worker
// that has not started: if no worker shows up, the caller runs every chunk itself.
#include "InferenceKernels.h"
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define LF_MAX_THREADS 64
// Spin iterations (each one `pause`, ~40–140 cycles) before a worker sleeps: ~50–200 µs.
#define LF_SPIN 4096

// word = generation (24 bits) << 40 | chunks (20 bits) << 20 | next (20 bits)
#define GEN_SHIFT 40
#define COUNT_SHIFT 20
#define FIELD_MASK ((1ull << 20) - 1)

static struct {
    _Atomic unsigned long long word;
    _Atomic long done;
    _Atomic(lf_task) fn;
    _Atomic(void *) ctx;
    _Atomic int sleepers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_mutex_t run_lock;  // one job at a time; a second (or nested) caller runs inline
    int started;               // worker threads started
    int wanted;                // threads per job, caller included
    unsigned long long generation;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .run_lock = PTHREAD_MUTEX_INITIALIZER,
    .wanted = 1,
};

// Claims and runs chunks of the job of generation `gen` until none are left.
static void work(unsigned long long gen) {
    unsigned long long w = atomic_load_explicit(&pool.word, memory_order_acquire);
    for (;;) {
        if ((w >> GEN_SHIFT) != gen) return;
        unsigned long long count = (w >> COUNT_SHIFT) & FIELD_MASK, next = w & FIELD_MASK;
        if (next >= count) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.word, &w, w + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        // Holding an unfinished chunk of `gen`: the caller cannot have published another job.
        lf_task fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
        fn(ctx, (long)next);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        w = atomic_load_explicit(&pool.word, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    unsigned long long seen = atomic_load(&pool.word) >> GEN_SHIFT;
    for (;;) {
        unsigned long long gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool.word, memory_order_acquire) >> GEN_SHIFT) == seen) {
            if (++spins < LF_SPIN) { _mm_pause(); continue; }
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((gen = atomic_load(&pool.word) >> GEN_SHIFT) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
            break;
        }
        seen = gen;
        work(gen);
    }
    return NULL;
}

void lf_pool_set_threads(int threads) {
    if (threads < 1) threads = 1;
    if (threads > LF_MAX_THREADS) threads = LF_MAX_THREADS;
    pthread_mutex_lock(&pool.run_lock);
    pool.wanted = threads;
    pthread_mutex_unlock(&pool.run_lock);
}

int lf_pool_threads(void) { return pool.wanted; }

void lf_pool_run(long chunks, lf_task fn, void *ctx) {
    if (chunks <= 0) return;
    if (chunks == 1 || pool.wanted <= 1 || chunks > (long)FIELD_MASK || pthread_mutex_trylock(&pool.run_lock) != 0) {
        for (long i = 0; i < chunks; i++) fn(ctx, i);
        return;
    }
    while (pool.started < pool.wanted - 1) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attr, worker_main, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.started++;
    }
    pool.generation = (pool.generation + 1) & ((1ull << 24) - 1);
    unsigned long long gen = pool.generation;
    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.word, (gen << GEN_SHIFT) | ((unsigned long long)chunks << COUNT_SHIFT), memory_order_seq_cst);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    work(gen);
    // Every chunk is claimed; wait for the ones still running on workers.
    int spins = 0;
    while (atomic_load_explicit(&pool.done, memory_order_acquire) < chunks) {
        if (++spins < LF_SPIN) _mm_pause(); else sched_yield();
    }
    pthread_mutex_unlock(&pool.run_lock);
}
