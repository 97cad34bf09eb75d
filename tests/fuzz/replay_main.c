/*
 * tests/fuzz/replay_main.c — runs a libFuzzer target over every file of a
 * corpus folder (and a few generated inputs), so the normal sanitizer test
 * suite exercises each fuzz target without clang's libFuzzer.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    if (buf != NULL) {
        (void)LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    return 1;
}

int main(int argc, char **argv) {
    int files = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (d == NULL) {
            files += run_file(argv[i]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            files += run_file(path);
        }
        closedir(d);
    }
    /* Deterministic pseudo-random inputs on top of the corpus. */
    uint32_t s = 12345;
    for (int k = 0; k < 2000; k++) {
        uint8_t buf[512];
        size_t n = (size_t)(k % 512);
        for (size_t j = 0; j < n; j++) {
            s = s * 1103515245u + 12345u;
            buf[j] = (uint8_t)(s >> 16);
        }
        (void)LLVMFuzzerTestOneInput(buf, n);
    }
    printf("replayed %d corpus files and 2000 generated inputs\n", files);
    return 0;
}
