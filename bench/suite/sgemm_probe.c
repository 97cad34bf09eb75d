/*
 * bench/suite/sgemm_probe.c — the machine's single-precision GEMM rate through
 * OpenBLAS (the BLAS the product links), the floor against which `make bench`
 * sets the UNet and VAE FLOPs. Square n×n sgemm, RUNS timed calls after one
 * warm-up; prints one JSON line: {"n":..,"threads":..,"gflops_best":..,"gflops_median":..}.
 *
 *   cc -O2 -I/usr/include/x86_64-linux-gnu/openblas-openmp sgemm_probe.c -lopenblas -o sgemm_probe
 *   OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 ./sgemm_probe [n=1024] [runs=7]
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1024;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (n < 16 || n > 8192 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: sgemm_probe [n 16..8192] [runs 1..100]\n");
        return 2;
    }
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (a == NULL || b == NULL || c == NULL) {
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7919u) % 1000u) * 1e-3f;
        b[i] = (float)((i * 104729u) % 1000u) * 1e-3f;
    }
    double t[100];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp);
    double flop = 2.0 * (double)n * (double)n * (double)n;
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    printf("{\"n\": %d, \"threads\": \"%s\", \"runs\": %d, \"gflops_best\": %.2f, \"gflops_median\": %.2f, \"check\": %g}\n",
           n, thr ? thr : "default", runs, flop / t[0] / 1e9, flop / t[runs / 2] / 1e9, (double)c[nn / 2]);
    free(a);
    free(b);
    free(c);
    return 0;
}
