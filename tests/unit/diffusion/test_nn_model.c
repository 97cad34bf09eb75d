/*
 * tests/unit/diffusion/test_nn_model.c — the diffusers model folder: configs
 * parsed into typed structs (values of the tiny reference model), tensor
 * lookup with shape checks, fp16 conversion, the fp16 variant file name, and
 * every way a folder can be incomplete or wrong (missing folder/file, pickle
 * weights, malformed or unsupported config, damaged weights).
 */
#include "test_util.h"

#include <sys/stat.h>

#include "core/alloc.h"
#include "core/config.h"
#include "diffusion/model.h"

static const char *tiny(char *buf, size_t cap) {
    (void)snprintf(buf, cap, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    return buf;
}

/* A private copy of the tiny model made of symlinks (cheap), in tmp. */
static void link_copy(const char *src, const char *tmp) {
    static const char *const files[] = {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
    };
    static const char *const dirs[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    char a[1200], b[1200];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        (void)snprintf(b, sizeof b, "%s/%s", tmp, dirs[i]);
        assert_int_equal(mkdir(b, 0755), 0);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        (void)snprintf(a, sizeof a, "%s/%s", src, files[i]);
        (void)snprintf(b, sizeof b, "%s/%s", tmp, files[i]);
        assert_int_equal(symlink(a, b), 0);
    }
}

static void write_file(const char *dir, const char *rel, const char *text) {
    char p[1200];
    (void)snprintf(p, sizeof p, "%s/%s", dir, rel);
    (void)unlink(p);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_open_tiny(void **state) {
    (void)state;
    char dir[1024];
    m2p_error err;
    m2p_nn_model *m = NULL;
    if (m2p_nn_model_open(tiny(dir, sizeof dir), M2P_NN_LOAD_ALL, &m, &err) != M2P_OK) {
        fail_msg("%s", err.detail);
    }
    const m2p_nn_unet_config *u = m2p_nn_model_unet_config(m);
    assert_int_equal(u->n_blocks, 4);
    assert_int_equal(u->block_out_channels[0], 32);
    assert_int_equal(u->block_out_channels[3], 64);
    assert_true(u->down_attn[0] && u->down_attn[2] && !u->down_attn[3]);
    assert_true(!u->up_attn[0] && u->up_attn[1] && u->up_attn[3]);
    assert_int_equal(u->layers_per_block, 2);
    assert_int_equal(u->heads[0], 2);
    assert_int_equal(u->heads[3], 2);
    assert_int_equal(u->cross_attention_dim, 32);
    assert_int_equal(u->norm_num_groups, 8);
    assert_int_equal(u->time_cond_proj_dim, 32);
    assert_true(u->flip_sin_to_cos);
    assert_false(u->use_linear_projection);
    const m2p_nn_vae_config *v = m2p_nn_model_vae_config(m);
    assert_int_equal(v->n_blocks, 3);
    assert_int_equal(v->layers_per_block, 1);
    assert_true(v->scaling_factor > 0.18214f && v->scaling_factor < 0.18216f);
    assert_true(v->use_post_quant_conv);
    const m2p_nn_clip_config *c = m2p_nn_model_clip_config(m);
    assert_int_equal(c->vocab_size, 49408);
    assert_int_equal(c->hidden, 32);
    assert_int_equal(c->layers, 2);
    assert_int_equal(c->heads, 4);
    assert_true(c->quick_gelu);
    const m2p_nn_sched_config *s = m2p_nn_model_sched_config(m);
    assert_string_equal(s->class_name, "LCMScheduler");
    assert_int_equal(s->num_train_timesteps, 1000);
    assert_int_equal(s->original_inference_steps, 50);
    assert_string_equal(s->beta_schedule, "scaled_linear");
    assert_true(s->timestep_scaling == 10.0);

    /* Weights: fp16 in the file, fp32 out, converted once. */
    const float *p = NULL;
    int64_t dims[4] = {32, 4, 3, 3};
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_UNET, "conv_in.weight", 4, dims, &p, &err), M2P_OK);
    assert_non_null(p);
    assert_true(p[0] != 0.0f);
    assert_true(m2p_nn_model_converted_bytes(m) > 1000000);
    int64_t wrong[4] = {32, 4, 3, 1};
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_UNET, "conv_in.weight", 4, wrong, &p, &err),
                     M2P_E_MODEL_SHAPE);
    assert_non_null(strstr(err.detail, "[32,4,3,3]"));
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_UNET, "conv_in.weight", 3, dims, &p, &err), M2P_E_MODEL_SHAPE);
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_UNET, "no.such.weight", -1, NULL, &p, &err),
                     M2P_E_MODEL_TENSOR_MISSING);
    assert_non_null(strstr(err.detail, "no.such.weight"));
    assert_true(m2p_nn_model_has(m, M2P_NN_PART_UNET, "time_embedding.cond_proj.weight"));
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_COUNT, "x", -1, NULL, &p, &err), M2P_E_INVALID_ARG);
    char path[1200];
    assert_non_null(strstr(m2p_nn_model_path(m, "tokenizer/vocab.json", path, sizeof path), "tiny-lcm/tokenizer/vocab.json"));
    m2p_nn_model_free(m);
    m2p_nn_model_free(NULL);

    /* Configs only: no weights mapped, lookups refused. */
    assert_int_equal(m2p_nn_model_open(dir, 0, &m, &err), M2P_OK);
    assert_int_equal(m2p_nn_model_tensor(m, M2P_NN_PART_UNET, "conv_in.weight", -1, NULL, &p, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_nn_model_converted_bytes(m), 0);
    m2p_nn_model_free(m);
}

static void test_folder_errors(void **state) {
    (void)state;
    char src[1024], tmp[64], p[1200];
    tiny(src, sizeof src);
    m2p_test_tmpdir(tmp, sizeof tmp);
    m2p_error err;
    m2p_nn_model *m = NULL;

    /* No folder at all: MODEL_MISSING naming both ways. */
    (void)snprintf(p, sizeof p, "%s/nothing", tmp);
    assert_int_equal(m2p_nn_model_open(p, M2P_NN_LOAD_ALL, &m, &err), M2P_E_MODEL_MISSING);
    assert_null(m);
    assert_non_null(strstr(err.detail, "model pull"));
    assert_non_null(strstr(err.detail, "MUS2PIC_MODEL"));
    assert_int_equal(m2p_nn_model_check(p, &err), M2P_E_MODEL_MISSING);

    link_copy(src, tmp);
    assert_int_equal(m2p_nn_model_check(tmp, &err), M2P_OK);
    assert_int_equal(m2p_nn_model_open(tmp, M2P_NN_LOAD_ALL, &m, &err), M2P_OK);
    m2p_nn_model_free(m);

    /* fp16 variant name is found. */
    char a[1200], b[1200];
    (void)snprintf(a, sizeof a, "%s/vae/diffusion_pytorch_model.safetensors", tmp);
    (void)snprintf(b, sizeof b, "%s/vae/diffusion_pytorch_model.fp16.safetensors", tmp);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(m2p_nn_model_check(tmp, &err), M2P_OK);
    assert_int_equal(m2p_nn_model_open(tmp, M2P_NN_LOAD_VAE, &m, &err), M2P_OK);
    m2p_nn_model_free(m);

    /* Only pickle weights: refused, not loaded. */
    (void)snprintf(a, sizeof a, "%s/vae/diffusion_pytorch_model.bin", tmp);
    assert_int_equal(rename(b, a), 0);
    assert_int_equal(m2p_nn_model_check(tmp, &err), M2P_E_MODEL_MISSING);
    assert_int_equal(m2p_nn_model_open(tmp, M2P_NN_LOAD_VAE, &m, &err), M2P_E_MODEL_INVALID);
    assert_non_null(strstr(err.detail, "pickle"));
    (void)snprintf(b, sizeof b, "%s/vae/diffusion_pytorch_model.safetensors", tmp);
    assert_int_equal(rename(a, b), 0);

    /* Damaged weights: a truncated file is MODEL_INVALID. */
    write_file(tmp, "text_encoder/model.safetensors", "\x10\0\0\0\0\0\0\0{\"a\":");
    assert_int_equal(m2p_nn_model_open(tmp, M2P_NN_LOAD_TEXT, &m, &err), M2P_E_MODEL_INVALID);

    /* Missing tokenizer file. */
    (void)snprintf(a, sizeof a, "%s/tokenizer/merges.txt", tmp);
    assert_int_equal(unlink(a), 0);
    assert_int_equal(m2p_nn_model_check(tmp, &err), M2P_E_MODEL_MISSING);
    assert_non_null(strstr(err.detail, "merges.txt"));

    /* Configs: malformed JSON, unsupported block, out of range, wrong type. */
    write_file(tmp, "scheduler/scheduler_config.json", "{\"num_train_timesteps\": ");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    write_file(tmp, "scheduler/scheduler_config.json", "{\"beta_schedule\": \"squaredcos_cap_v2\"}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    assert_non_null(strstr(err.detail, "beta_schedule"));
    write_file(tmp, "scheduler/scheduler_config.json", "{}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_OK); /* defaults */
    assert_int_equal(m2p_nn_model_sched_config(m)->num_train_timesteps, 1000);
    m2p_nn_model_free(m);

    write_file(tmp, "vae/config.json", "{\"block_out_channels\": [128, 256], \"up_block_types\": [\"UpDecoderBlock2D\"]}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    write_file(tmp, "vae/config.json", "{\"block_out_channels\": [100], \"up_block_types\": [\"UpDecoderBlock2D\"]}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG); /* 100 % 32 groups */
    write_file(tmp, "vae/config.json", "{\"block_out_channels\": [64], \"up_block_types\": [\"UpDecoderBlock2D\"]}");
    write_file(tmp, "text_encoder/config.json", "{\"hidden_size\": \"768\"}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    assert_non_null(strstr(err.detail, "hidden_size"));
    write_file(tmp, "text_encoder/config.json", "{\"hidden_act\": \"relu\"}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    write_file(tmp, "text_encoder/config.json", "[]");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    write_file(tmp, "text_encoder/config.json", "{}");

    write_file(tmp, "unet/config.json",
               "{\"block_out_channels\": [320, 640], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
               " \"up_block_types\": [\"UpBlock2D\", \"SimpleCrossAttnUpBlock2D\"]}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    assert_non_null(strstr(err.detail, "up_block_types"));
    write_file(tmp, "unet/config.json",
               "{\"block_out_channels\": [320, 640], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
               " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"addition_embed_type\": \"text_time\"}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG); /* SDXL-style */
    write_file(tmp, "unet/config.json",
               "{\"block_out_channels\": [320, 640], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
               " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"attention_head_dim\": [5, 10]}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_OK); /* per-block heads (SD 2.x style list) */
    assert_int_equal(m2p_nn_model_unet_config(m)->heads[1], 10);
    m2p_nn_model_free(m);
    write_file(tmp, "unet/config.json",
               "{\"block_out_channels\": [320, 640], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
               " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"attention_head_dim\": [5, 10, 20]}");
    assert_int_equal(m2p_nn_model_open(tmp, 0, &m, &err), M2P_E_MODEL_CONFIG);
    m2p_test_rmdir(tmp);
}

static void test_dir_and_describe(void **state) {
    (void)state;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    char buf[4096], dir[1024];
    (void)snprintf(cfg.data_dir, sizeof cfg.data_dir, "/tmp/m2p-none");
    assert_string_equal(m2p_nn_model_dir_for(&cfg, buf, sizeof buf), "/tmp/m2p-none/models/SimianLuo/LCM_Dreamshaper_v7");
    assert_int_equal(m2p_nn_model_describe(&cfg, buf, sizeof buf), M2P_E_MODEL_MISSING);
    assert_non_null(strstr(buf, "incomplete"));
    (void)snprintf(cfg.model, sizeof cfg.model, "%s", tiny(dir, sizeof dir));
    assert_string_equal(m2p_nn_model_dir_for(&cfg, buf, sizeof buf), dir);
    assert_int_equal(m2p_nn_model_describe(&cfg, buf, sizeof buf), M2P_OK);
    printf("%s", buf);
    assert_non_null(strstr(buf, "status: complete"));
    assert_non_null(strstr(buf, "fp16"));
    assert_non_null(strstr(buf, "guidance embedding yes"));
    /* A tiny buffer is still NUL-terminated. */
    char small[16];
    assert_int_equal(m2p_nn_model_describe(&cfg, small, sizeof small), M2P_OK);
    assert_true(strlen(small) < sizeof small);
}

/* Failing the Nth allocation anywhere in open + bind: a clean NOMEM, no leak (ASan checks). */
static void test_alloc_failures(void **state) {
    (void)state;
    char dir[1024];
    tiny(dir, sizeof dir);
    int failures = 0;
    for (long k = 0; k < 40; k++) {
        m2p_error err;
        m2p_nn_model *m = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_nn_model_open(dir, M2P_NN_LOAD_ALL, &m, &err);
        m2p_alloc_fail_after(-1);
        if (rc != M2P_OK) {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(m);
            failures++;
            continue;
        }
        m2p_nn_model_free(m);
    }
    assert_true(failures > 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_tiny),
        cmocka_unit_test(test_folder_errors),
        cmocka_unit_test(test_dir_and_describe),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
