/* sgemm throughput of the OpenBLAS this machine links, with the core it picked or another one.
 *
 *   sgemm_bench [--switch CORE] [--repeat R] M N K [M N K ...]
 *
 * --switch CORE re-selects the kernel family in-process exactly as llava-forge's BLASRuntime does
 * (OPENBLAS_CORETYPE=CORE, then gotoblas_dynamic_quit + gotoblas_dynamic_init), so the figures
 * show both that the switch works and what it buys. Threads come from OPENBLAS_NUM_THREADS.
 * Prints one line per shape: core, threads, M N K, best-of-R seconds, GFLOP/s. */
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int switch_core(const char *core) {
    void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (!quit || !init) { fprintf(stderr, "this OpenBLAS is not a DYNAMIC_ARCH build\n"); return 1; }
    setenv("OPENBLAS_CORETYPE", core, 1);
    quit();
    init();
    return 0;
}

int main(int argc, char **argv) {
    int repeat = 5, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc) { fprintf(stderr, "missing value for %s\n", argv[i]); return 2; }
        if (strcmp(argv[i], "--switch") == 0) { if (switch_core(argv[i + 1])) return 1; }
        else if (strcmp(argv[i], "--repeat") == 0) repeat = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if ((argc - i) % 3 != 0 || argc == i) { fprintf(stderr, "usage: %s [--switch CORE] [--repeat R] M N K [M N K ...]\n", argv[0]); return 2; }
    for (; i < argc; i += 3) {
        int m = atoi(argv[i]), n = atoi(argv[i + 1]), k = atoi(argv[i + 2]);
        float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n), *c = malloc(sizeof(float) * (size_t)m * n);
        for (size_t j = 0; j < (size_t)m * k; j++) a[j] = (float)(j % 7) * 0.1f;
        for (size_t j = 0; j < (size_t)k * n; j++) b[j] = (float)(j % 5) * 0.2f;
        /* One warm-up, then the best of `repeat` (the machine is shared; best-of filters interference). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        double best = 1e30;
        for (int r = 0; r < repeat; r++) {
            double t0 = now();
            /* A · Bᵀ: the layout of Linear.forward (weights [out, in]). */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        printf("%-10s threads=%d  %5d x %5d x %5d  %.5f s  %7.1f GFLOP/s\n", openblas_get_corename(), openblas_get_num_threads(),
               m, n, k, best, 2.0 * m * n * k / best / 1e9);
        free(a); free(b); free(c);
    }
    return 0;
}
