/*
 * tests/unit/diffusion/test_nn_pull.c — `model pull` against a loopback HTTP
 * server (tests/tools/nn_model_server.py, started here) that serves the tiny
 * model the way the Hugging Face hub does (API listing, 302 to a "CDN" with
 * X-Linked-Size / X-Linked-ETag, Range). Covers: a complete pull whose files
 * are byte-identical to the source; skipping files already in place; resume
 * after a dropped connection (same run and next run, with a Range request
 * seen by the server); a server that ignores Range; a corrupted file (hash
 * mismatch → MODEL_HASH, nothing left in place); garbage in a .part; the fp16
 * variant; a mirror without the API; bad IDs, unknown models, a closed port,
 * a bad endpoint; cancellation; a single-component repository
 * (madebyollin/taesd: config.json + weights at the top) with and without the API.
 */
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "core/config.h"
#include "core/fs.h"
#include "diffusion/model.h"
#include "diffusion/pull.h"
#include "diffusion/taesd.h"

#define ID "test/tiny-lcm"

/* The repository ID the next server_start serves. */
static const char *g_server_id = ID;

typedef struct server {
    pid_t pid;
    int port;
    char tmp[64];
    char log[128];
} server;

static void tiny_dir(char *buf, size_t cap) {
    (void)snprintf(buf, cap, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
}

/* Starts the server on root with extra arguments (NULL-terminated list). */
static void server_start(server *s, const char *root, const char *const *extra) {
    m2p_test_tmpdir(s->tmp, sizeof s->tmp);
    char script[1024], portf[128];
    (void)snprintf(script, sizeof script, "%s/tests/tools/nn_model_server.py", m2p_test_source_dir());
    (void)snprintf(portf, sizeof portf, "%s/port", s->tmp);
    (void)snprintf(s->log, sizeof s->log, "%s/requests.log", s->tmp);
    const char *argv[32] = {"python3", script, "--root", root, "--id", g_server_id, "--port-file", portf, "--log", s->log};
    int argc = 10;
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 31; i++) {
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        /* Dies with the test even when an assertion jumps past server_stop. */
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            (void)dup2(devnull, 1);
        }
        /* The system interpreter first: version-manager shims (pyenv) cost seconds per start. */
        execv("/usr/bin/python3", (char *const *)argv);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(portf, "r");
        if (f != NULL) {
            int ok = fscanf(f, "%d", &s->port);
            fclose(f);
            if (ok == 1) {
                return;
            }
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("model server did not start");
}

static void server_stop(server *s) {
    (void)kill(s->pid, SIGTERM);
    int st;
    (void)waitpid(s->pid, &st, 0);
    m2p_test_rmdir(s->tmp);
}

/* True when the request log has a line containing both needles. */
static bool logged(const server *s, const char *a, const char *b) {
    FILE *f = fopen(s->log, "r");
    if (f == NULL) {
        return false;
    }
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    }
    fclose(f);
    return found;
}

static int count_logged(const server *s, const char *a) {
    FILE *f = fopen(s->log, "r");
    if (f == NULL) {
        return 0;
    }
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        n += strstr(line, a) != NULL;
    }
    fclose(f);
    return n;
}

static void setup_cfg(m2p_config *cfg, const server *s, const char *data) {
    m2p_config_defaults(cfg);
    (void)snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data);
    (void)snprintf(cfg->hf_endpoint, sizeof cfg->hf_endpoint, "http://127.0.0.1:%d/", s->port);
}

static bool exists(const char *dir, const char *rel) {
    char p[1200];
    struct stat sb;
    int n = snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_true(n > 0 && (size_t)n < sizeof p);
    return stat(p, &sb) == 0;
}

static void assert_same_file(const char *a_dir, const char *b_dir, const char *rel) {
    char a[1200], b[1200], ha[65], hb[65];
    (void)snprintf(a, sizeof a, "%s/%s", a_dir, rel);
    (void)snprintf(b, sizeof b, "%s/%s", b_dir, rel);
    assert_int_equal(m2p_fs_sha256_file(a, ha, NULL), M2P_OK);
    assert_int_equal(m2p_fs_sha256_file(b, hb, NULL), M2P_OK);
    assert_string_equal(ha, hb);
}

static const char *const k_rels[] = {
    "model_index.json",        "scheduler/scheduler_config.json",  "text_encoder/config.json",
    "text_encoder/model.safetensors", "tokenizer/vocab.json",      "tokenizer/merges.txt",
    "unet/config.json",        "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
};

static void test_pull_complete_and_skip(void **state) {
    (void)state;
    char root[1024], data[128], dir[1024];
    tiny_dir(root, sizeof root);
    server s;
    server_start(&s, root, NULL);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;
    m2p_nn_pull_opts opts = {false, 1};
    m2p_code rc = m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err);
    if (rc != M2P_OK) {
        fail_msg("pull: %s", err.detail);
    }
    assert_non_null(strstr(dir, "/models/test/tiny-lcm"));
    for (size_t i = 0; i < sizeof k_rels / sizeof k_rels[0]; i++) {
        assert_same_file(root, dir, k_rels[i]);
        char part[256];
        (void)snprintf(part, sizeof part, "%s.part", k_rels[i]);
        assert_false(exists(dir, part));
    }
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_OK);
    m2p_nn_model *m = NULL;
    assert_int_equal(m2p_nn_model_open(dir, M2P_NN_LOAD_ALL, &m, &err), M2P_OK);
    m2p_nn_model_free(m);
    assert_true(logged(&s, "/api/models/test/tiny-lcm", NULL));
    assert_true(logged(&s, "/cdn/unet/diffusion_pytorch_model.safetensors", NULL));

    /* Second pull: everything in place, no file fetched again. */
    int before = count_logged(&s, "/cdn/");
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, NULL, 0, &err), M2P_OK);
    assert_int_equal(count_logged(&s, "/cdn/"), before);

    /* MUS2PIC_MODEL-free lookup finds it under data_dir/models/<model_id>. */
    (void)snprintf(cfg.model_id, sizeof cfg.model_id, "%s", ID);
    char where[1024];
    assert_string_equal(m2p_nn_model_dir_for(&cfg, where, sizeof where), dir);
    server_stop(&s);
}

static void test_pull_resume(void **state) {
    (void)state;
    char root[1024], data[128], dir[1024];
    tiny_dir(root, sizeof root);
    const char *extra[] = {"--drop", "unet/diffusion_pytorch_model.safetensors:100000", "--drop",
                           "text_encoder/model.safetensors:5000", NULL};
    server s;
    server_start(&s, root, extra);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;

    /* No retries: the first drop fails the pull, keeping the .part... */
    m2p_nn_pull_opts once = {false, 0};
    assert_int_equal(m2p_nn_pull(&cfg, ID, &once, NULL, dir, sizeof dir, &err), M2P_E_MODEL_DOWNLOAD);
    assert_non_null(strstr(err.detail, "resume"));
    assert_true(exists(dir, "text_encoder/model.safetensors.part"));
    assert_false(exists(dir, "text_encoder/model.safetensors"));
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_E_MODEL_MISSING);

    /* ...and the next run resumes it with a Range request; in-run retries resume the unet drop. */
    m2p_nn_pull_opts retry = {false, 2};
    m2p_code rc = m2p_nn_pull(&cfg, ID, &retry, NULL, dir, sizeof dir, &err);
    if (rc != M2P_OK) {
        fail_msg("pull: %s", err.detail);
    }
    assert_true(logged(&s, "/cdn/text_encoder/model.safetensors", "bytes=5000-"));
    assert_true(logged(&s, "/cdn/unet/diffusion_pytorch_model.safetensors", "bytes=100000-"));
    assert_same_file(root, dir, "unet/diffusion_pytorch_model.safetensors");
    assert_same_file(root, dir, "text_encoder/model.safetensors");
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_OK);
    server_stop(&s);
}

static void test_pull_no_range_and_bad_part(void **state) {
    (void)state;
    char root[1024], data[64], dir[1024], p[1200];
    tiny_dir(root, sizeof root);
    m2p_test_tmpdir(data, sizeof data); /* outlives the first server */
    const char *extra[] = {"--no-range", NULL};
    server s;
    server_start(&s, root, extra);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;
    /* A .part of garbage: the server ignores Range and sends the whole file, which replaces it. */
    (void)snprintf(p, sizeof p, "%s/models/%s/vae", data, ID);
    assert_int_equal(m2p_fs_mkdirs(p, &err), M2P_OK);
    (void)snprintf(p, sizeof p, "%s/models/%s/vae/diffusion_pytorch_model.safetensors.part", data, ID);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    for (int i = 0; i < 1000; i++) {
        fputc(0xAB, f);
    }
    fclose(f);
    m2p_nn_pull_opts opts = {false, 0};
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_OK);
    assert_true(logged(&s, "/cdn/vae/diffusion_pytorch_model.safetensors", "bytes=1000-"));
    assert_same_file(root, dir, "vae/diffusion_pytorch_model.safetensors");
    server_stop(&s);

    /* With Range honoured, garbage at the start of a .part is caught by the hash. */
    server_start(&s, root, NULL);
    setup_cfg(&cfg, &s, data);
    (void)snprintf(p, sizeof p, "%s/models/%s/vae/diffusion_pytorch_model.safetensors", data, ID);
    assert_int_equal(unlink(p), 0);
    (void)snprintf(p, sizeof p, "%s/models/%s/vae/diffusion_pytorch_model.safetensors.part", data, ID);
    f = fopen(p, "wb");
    assert_non_null(f);
    for (int i = 0; i < 1000; i++) {
        fputc(0xAB, f);
    }
    fclose(f);
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_E_MODEL_HASH);
    assert_false(exists(dir, "vae/diffusion_pytorch_model.safetensors"));
    assert_false(exists(dir, "vae/diffusion_pytorch_model.safetensors.part"));
    /* Running it again heals. */
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_OK);
    assert_same_file(root, dir, "vae/diffusion_pytorch_model.safetensors");
    server_stop(&s);
    m2p_test_rmdir(data);
}

static void test_pull_corrupt(void **state) {
    (void)state;
    char root[1024], data[128], dir[1024];
    tiny_dir(root, sizeof root);
    const char *extra[] = {"--corrupt", "text_encoder/model.safetensors", NULL};
    server s;
    server_start(&s, root, extra);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;
    m2p_nn_pull_opts opts = {false, 3};
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_E_MODEL_HASH);
    assert_non_null(strstr(err.detail, "text_encoder/model.safetensors"));
    assert_false(exists(dir, "text_encoder/model.safetensors"));
    assert_false(exists(dir, "text_encoder/model.safetensors.part"));
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_E_MODEL_MISSING);
    server_stop(&s);
}

static void test_pull_variants_and_fallback(void **state) {
    (void)state;
    char root[1024], data[128], dir[1024], a[1200], b[1200];
    tiny_dir(root, sizeof root);
    /* A hub folder with an fp16 unet variant beside the plain one (symlinks to the tiny model). */
    char hub[64];
    m2p_test_tmpdir(hub, sizeof hub);
    static const char *const sub[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    for (size_t i = 0; i < 5; i++) {
        (void)snprintf(a, sizeof a, "%s/%s", hub, sub[i]);
        assert_int_equal(mkdir(a, 0755), 0);
    }
    for (size_t i = 0; i < sizeof k_rels / sizeof k_rels[0]; i++) {
        (void)snprintf(a, sizeof a, "%s/%s", root, k_rels[i]);
        (void)snprintf(b, sizeof b, "%s/%s", hub, k_rels[i]);
        assert_int_equal(symlink(a, b), 0);
    }
    (void)snprintf(a, sizeof a, "%s/unet/diffusion_pytorch_model.safetensors", root);
    (void)snprintf(b, sizeof b, "%s/unet/diffusion_pytorch_model.fp16.safetensors", hub);
    assert_int_equal(symlink(a, b), 0);

    server s;
    server_start(&s, hub, NULL);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;
    m2p_nn_pull_opts opts = {true, 0};
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_OK);
    assert_true(exists(dir, "unet/diffusion_pytorch_model.fp16.safetensors"));
    assert_false(exists(dir, "unet/diffusion_pytorch_model.safetensors"));
    assert_true(exists(dir, "vae/diffusion_pytorch_model.safetensors")); /* no fp16 variant listed */
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_OK);
    server_stop(&s);

    /* A mirror without the listing API: the fixed list is used. */
    const char *extra[] = {"--no-api", NULL};
    server_start(&s, root, extra);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    setup_cfg(&cfg, &s, data);
    opts.fp16 = false;
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_OK);
    assert_int_equal(m2p_nn_model_check(dir, &err), M2P_OK);
    server_stop(&s);
    m2p_test_rmdir(hub);
}

static void test_pull_errors(void **state) {
    (void)state;
    static const char *const bad[] = {"", "a", "a/b/c", "../x", "a/..", ".a/b", "a/-b", "a b/c", "a/b?c", "a/b%2f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (m2p_nn_model_id_valid(bad[i])) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
    assert_true(m2p_nn_model_id_valid("SimianLuo/LCM_Dreamshaper_v7"));
    assert_true(m2p_nn_model_id_valid("runwayml/stable-diffusion-v1.5"));

    char root[1024], data[128], dir[1024];
    tiny_dir(root, sizeof root);
    server s;
    server_start(&s, root, NULL);
    (void)snprintf(data, sizeof data, "%s/data", s.tmp);
    m2p_config cfg;
    setup_cfg(&cfg, &s, data);
    m2p_error err;
    m2p_nn_pull_opts opts = {false, 0};
    assert_int_equal(m2p_nn_pull(&cfg, "../etc", &opts, NULL, dir, sizeof dir, &err), M2P_E_INVALID_ARG);
    /* Unknown model: a clear HTTP 404 naming the ID problem. */
    assert_int_equal(m2p_nn_pull(&cfg, "nobody/nothing", &opts, NULL, dir, sizeof dir, &err), M2P_E_MODEL_DOWNLOAD);
    assert_non_null(strstr(err.detail, "404"));
    assert_non_null(strstr(err.detail, "model ID"));
    /* Cancelled before anything arrives. */
    atomic_bool stop = true;
    m2p_progress cancel = {NULL, NULL, NULL, &stop};
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, &cancel, dir, sizeof dir, &err), M2P_E_CANCELLED);
    int port = s.port;
    server_stop(&s);
    /* Nobody listening. */
    (void)snprintf(cfg.hf_endpoint, sizeof cfg.hf_endpoint, "http://127.0.0.1:%d", port);
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_E_MODEL_DOWNLOAD);
    (void)snprintf(cfg.hf_endpoint, sizeof cfg.hf_endpoint, "ftp://127.0.0.1:%d", port);
    assert_int_equal(m2p_nn_pull(&cfg, ID, &opts, NULL, dir, sizeof dir, &err), M2P_E_CONFIG);
}

/* madebyollin/taesd: the component files land where the lcm renderer looks for TAESD. */
static void test_pull_taesd(void **state) {
    (void)state;
    char root[1024], data[128], dir[1024], where[1024];
    (void)snprintf(root, sizeof root, "%s/tests/fixtures/nn/tiny-lcm/taesd", m2p_test_source_dir());
    g_server_id = "madebyollin/taesd";
    for (int no_api = 0; no_api < 2; no_api++) {
        const char *extra[] = {"--no-api", NULL};
        server s;
        server_start(&s, root, no_api ? extra : NULL);
        (void)snprintf(data, sizeof data, "%s/data", s.tmp);
        m2p_config cfg;
        setup_cfg(&cfg, &s, data);
        m2p_error err;
        m2p_nn_pull_opts opts = {false, 0};
        m2p_code rc = m2p_nn_pull(&cfg, "madebyollin/taesd", &opts, NULL, dir, sizeof dir, &err);
        if (rc != M2P_OK) {
            fail_msg("pull (no_api %d): %s", no_api, err.detail);
        }
        assert_same_file(root, dir, "config.json");
        assert_same_file(root, dir, "diffusion_pytorch_model.safetensors");
        assert_false(exists(dir, "unet"));
        assert_int_equal(m2p_taesd_check(dir, &err), M2P_OK);
        assert_string_equal(m2p_taesd_dir_for(&cfg, where, sizeof where), dir);
        m2p_taesd *t = NULL;
        assert_int_equal(m2p_taesd_open(dir, &t, &err), M2P_OK);
        m2p_taesd_free(t);
        server_stop(&s);
    }
    g_server_id = ID;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_complete_and_skip),   cmocka_unit_test(test_pull_resume),
        cmocka_unit_test(test_pull_no_range_and_bad_part), cmocka_unit_test(test_pull_corrupt),
        cmocka_unit_test(test_pull_variants_and_fallback), cmocka_unit_test(test_pull_errors),
        cmocka_unit_test(test_pull_taesd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
