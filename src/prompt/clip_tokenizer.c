/*
 * prompt/clip_tokenizer.c — CLIP's byte-level BPE (see clip_tokenizer.h for
 * the text pipeline and the documented differences from Python).
 *
 * Data: a pair table mapping (left id, right id) → (rank, merged id), open
 * addressing on a power-of-two table, and the ids of the 256 single-byte
 * symbols with and without "</w>". Loading builds a temporary string → id map
 * of the vocabulary to resolve the merges, then drops it. Invariants after a
 * successful load: every merge's ids are < vocab_size; byte_id/byte_id_w are
 * all valid ids; the table is never written again (thread-safe reads).
 *
 * Both sources go through one path: the default vocabulary (OpenAI's
 * bpe_simple_vocab_16e6.txt.gz, embedded) is expanded into exactly the
 * vocabulary Python builds — 256 byte symbols in bytes_to_unicode order, the
 * same with "</w>", one token per merge (the first 48894 merge lines), then
 * <|startoftext|> and <|endoftext|> — and vocab.json is read as given.
 *
 * BPE: per piece, the reference repeatedly merges every occurrence (left to
 * right) of the adjacent pair with the lowest rank; here a min-heap of
 * candidate pairs ordered by (rank, position) gives the same merges in
 * O(n log n), so one hostile 64 KiB "word" costs milliseconds, not seconds.
 */
#include "prompt/clip_tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/assets.h"
#include "core/fs.h"

#define DEFAULT_MERGES 48894 /* 49152 - 256 - 2 */
#define FILE_CAP (16u << 20)
#define MERGES_CAP (1u << 20) /* SD1.x has 48894 */
#define VOCAB_CAP (1u << 21)

typedef struct pair_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank;
    int32_t merged;
} pair_slot;

struct m2p_clip_tokenizer {
    pair_slot *pairs;
    size_t pair_cap; /* power of two */
    int32_t byte_id[256];
    int32_t byte_id_w[256];
    int32_t bos, eos, pad;
    size_t vocab_size;
};

/* --- GPT-2/CLIP bytes_to_unicode ------------------------------------------------------------ */

static bool byte_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

/* Code point standing for byte b, and b's position in the vocabulary order. */
static void byte_maps(uint32_t cp_of[256], int order_of[256]) {
    int k = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (byte_printable(b)) {
            cp_of[b] = b;
            order_of[b] = k++;
        }
    }
    unsigned n = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (!byte_printable(b)) {
            cp_of[b] = 256 + n++;
            order_of[b] = k++;
        }
    }
}

static size_t put_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* --- a string → id map used while loading ----------------------------------------------------- */

typedef struct str_slot {
    const char *s; /* not owned */
    uint32_t len;
    int32_t id;
} str_slot;

typedef struct str_map {
    str_slot *slots;
    size_t cap;
} str_map;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool str_map_init(str_map *m, size_t n) {
    size_t cap = 1024;
    while (cap < 2 * n) {
        cap *= 2;
    }
    m->slots = m2p_calloc(cap, sizeof *m->slots);
    m->cap = cap;
    return m->slots != NULL;
}

/* Inserts or overwrites (a later duplicate wins, as in a Python dict). */
static void str_map_put(str_map *m, const char *s, size_t n, int32_t id) {
    size_t i = (size_t)hash_bytes(s, n) & (m->cap - 1);
    while (m->slots[i].s != NULL) {
        if (m->slots[i].len == n && memcmp(m->slots[i].s, s, n) == 0) {
            m->slots[i].id = id;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i].s = s;
    m->slots[i].len = (uint32_t)n;
    m->slots[i].id = id;
}

static int32_t str_map_get(const str_map *m, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & (m->cap - 1);
    while (m->slots[i].s != NULL) {
        if (m->slots[i].len == n && memcmp(m->slots[i].s, s, n) == 0) {
            return m->slots[i].id;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* --- the pair table --------------------------------------------------------------------------- */

static uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1u;
}

static size_t pair_hash(uint64_t key, size_t cap) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static void pair_put(m2p_clip_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t key = pair_key(a, b);
    size_t i = pair_hash(key, t->pair_cap);
    while (t->pairs[i].key != 0 && t->pairs[i].key != key) {
        i = (i + 1) & (t->pair_cap - 1);
    }
    t->pairs[i].key = key;
    t->pairs[i].rank = rank;
    t->pairs[i].merged = merged;
}

static const pair_slot *pair_get(const m2p_clip_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    size_t i = pair_hash(key, t->pair_cap);
    while (t->pairs[i].key != 0) {
        if (t->pairs[i].key == key) {
            return &t->pairs[i];
        }
        i = (i + 1) & (t->pair_cap - 1);
    }
    return NULL;
}

/* --- building ----------------------------------------------------------------------------------- */

typedef struct merge_line {
    const char *left;
    size_t left_len;
    const char *right;
    size_t right_len;
    size_t line_no;
} merge_line;

/* Splits merges text into "left right" lines. Skips a first line starting
 * with "#version" when skip_header, stops after max_merges (0 = all). */
static m2p_code split_merges(const char *text, size_t len, bool skip_first_always, size_t max_merges, const char *what,
                             merge_line **out, size_t *n_out, m2p_error *err) {
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++) {
        n_lines += text[i] == '\n';
    }
    if (max_merges > 0 && n_lines > max_merges + 1) {
        n_lines = max_merges + 1;
    }
    if (n_lines > MERGES_CAP + 1) {
        return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "%s has more than %u merges", what, MERGES_CAP);
    }
    merge_line *lines = m2p_malloc_array(n_lines, sizeof *lines);
    if (lines == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "merges");
    }
    size_t n = 0;
    size_t line_no = 0;
    size_t pos = 0;
    while (pos < len && (max_merges == 0 || n < max_merges)) {
        size_t end = pos;
        while (end < len && text[end] != '\n') {
            end++;
        }
        size_t e = end;
        if (e > pos && text[e - 1] == '\r') {
            e--;
        }
        line_no++;
        bool header = line_no == 1 && (skip_first_always || (e - pos >= 8 && memcmp(text + pos, "#version", 8) == 0));
        if (!header && e > pos) {
            const char *sp = memchr(text + pos, ' ', e - pos);
            const char *sp2 = sp != NULL ? memchr(sp + 1, ' ', (size_t)(text + e - (sp + 1))) : NULL;
            if (sp == NULL || sp == text + pos || sp + 1 == text + e || sp2 != NULL) {
                m2p_free(lines);
                return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "%s line %zu: expected two symbols", what, line_no);
            }
            lines[n].left = text + pos;
            lines[n].left_len = (size_t)(sp - (text + pos));
            lines[n].right = sp + 1;
            lines[n].right_len = (size_t)(text + e - (sp + 1));
            lines[n].line_no = line_no;
            n++;
        }
        pos = end + 1;
    }
    *out = lines;
    *n_out = n;
    return M2P_OK;
}

/* Fills pairs and byte ids from a vocabulary map and merge lines. */
static m2p_code build(m2p_clip_tokenizer *t, const str_map *vocab, size_t vocab_size, const merge_line *m,
                      size_t n_merges, const char *what, m2p_error *err) {
    uint32_t cp_of[256];
    int order_of[256];
    byte_maps(cp_of, order_of);
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        size_t n = put_utf8(cp_of[b], s);
        t->byte_id[b] = str_map_get(vocab, s, n);
        memcpy(s + n, "</w>", 4);
        t->byte_id_w[b] = str_map_get(vocab, s, n + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0) {
            return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "the vocabulary lacks the symbol for byte %u", b);
        }
    }
    t->bos = str_map_get(vocab, "<|startoftext|>", 15);
    t->eos = str_map_get(vocab, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0) {
        return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "the vocabulary lacks <|startoftext|> or <|endoftext|>");
    }
    t->pad = t->eos;
    t->vocab_size = vocab_size;
    size_t cap = 1024;
    while (cap < 2 * n_merges) {
        cap *= 2;
    }
    t->pairs = m2p_calloc(cap, sizeof *t->pairs);
    if (t->pairs == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "merges table");
    }
    t->pair_cap = cap;
    char cat[512];
    for (size_t i = 0; i < n_merges; i++) {
        int32_t a = str_map_get(vocab, m[i].left, m[i].left_len);
        int32_t b = str_map_get(vocab, m[i].right, m[i].right_len);
        int32_t r = -1;
        if (m[i].left_len + m[i].right_len <= sizeof cat) {
            memcpy(cat, m[i].left, m[i].left_len);
            memcpy(cat + m[i].left_len, m[i].right, m[i].right_len);
            r = str_map_get(vocab, cat, m[i].left_len + m[i].right_len);
        }
        if (a < 0 || b < 0 || r < 0) {
            return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "%s line %zu: a symbol is not in the vocabulary", what,
                                 m[i].line_no);
        }
        pair_put(t, a, b, (int32_t)i, r);
    }
    return M2P_OK;
}

void m2p_clip_tokenizer_free(m2p_clip_tokenizer *t) {
    if (t == NULL) {
        return;
    }
    m2p_free(t->pairs);
    m2p_free(t);
}

/* gunzip of an embedded asset into a new buffer (NUL-terminated), stopping
 * once max_lines complete lines are out (only the first 48895 of the file's
 * 262145 lines are used: this skips 5/6 of the decompression). */
static m2p_code gunzip_lines(const unsigned char *in, size_t in_len, size_t max_lines, char **out, size_t *out_len,
                             m2p_error *err) {
    size_t cap = 1u << 20;
    size_t n = 0;
    size_t lines = 0;
    char *buf = m2p_malloc(cap);
    if (buf == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "tokenizer vocabulary");
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        m2p_free(buf);
        return m2p_error_set(err, M2P_E_INTERNAL, "zlib init failed");
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)in_len;
    int zr = Z_OK;
    bool done = false;
    while (!done) {
        if (n + 1 >= cap) {
            if (cap >= FILE_CAP) {
                zr = Z_BUF_ERROR;
                break;
            }
            char *q = m2p_realloc(buf, cap * 2);
            if (q == NULL) {
                zr = Z_MEM_ERROR;
                break;
            }
            buf = q;
            cap *= 2;
        }
        size_t room = cap - 1 - n;
        if (room > 65536) {
            room = 65536; /* small steps, so we stop soon after the last line we need */
        }
        zs.next_out = (Bytef *)(buf + n);
        zs.avail_out = (uInt)room;
        zr = inflate(&zs, Z_NO_FLUSH);
        size_t got = room - zs.avail_out;
        for (size_t i = n; i < n + got; i++) {
            if (buf[i] == '\n' && ++lines == max_lines) {
                got = i + 1 - n;
                done = true;
                break;
            }
        }
        n += got;
        if (zr == Z_STREAM_END) {
            done = true;
        } else if (zr != Z_OK) {
            break;
        }
    }
    (void)inflateEnd(&zs);
    if (!done) {
        m2p_free(buf);
        return m2p_error_set(err, zr == Z_MEM_ERROR ? M2P_E_NOMEM : M2P_E_TOKENIZER_INVALID,
                             "data/clip/bpe_simple_vocab_16e6.txt.gz does not decompress");
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return M2P_OK;
}

m2p_code m2p_clip_tokenizer_default(m2p_clip_tokenizer **out, m2p_error *err) {
    *out = NULL;
    const unsigned char *gz = NULL;
    size_t gz_len = 0;
    if (!m2p_asset_get("data/clip/bpe_simple_vocab_16e6.txt.gz", &gz, &gz_len)) {
        return m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "data/clip/bpe_simple_vocab_16e6.txt.gz is not embedded");
    }
    m2p_code rc = M2P_OK;
    char *text = NULL;
    size_t text_len = 0;
    merge_line *lines = NULL;
    size_t n_lines = 0;
    char *arena = NULL;
    str_map vocab = {0};
    m2p_clip_tokenizer *t = m2p_calloc(1, sizeof *t);
    if (t == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "tokenizer");
    }
    rc = gunzip_lines(gz, gz_len, DEFAULT_MERGES + 1, &text, &text_len, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    rc = split_merges(text, text_len, true, DEFAULT_MERGES, "bpe_simple_vocab_16e6.txt", &lines, &n_lines, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    if (n_lines != DEFAULT_MERGES) {
        rc = m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "bpe_simple_vocab_16e6.txt has %zu merges, not %d", n_lines,
                           DEFAULT_MERGES);
        goto fail;
    }
    /* The vocabulary strings: 512 byte symbols (≤ 2 + 4 bytes each), one per merge, 2 specials. */
    size_t vocab_size = 256 + 256 + n_lines + 2;
    size_t arena_cap = (size_t)512 * 8 + text_len + 64;
    arena = m2p_malloc(arena_cap);
    if (arena == NULL || !str_map_init(&vocab, vocab_size)) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "tokenizer vocabulary");
        goto fail;
    }
    uint32_t cp_of[256];
    int order_of[256];
    byte_maps(cp_of, order_of);
    size_t used = 0;
    for (unsigned b = 0; b < 256; b++) {
        char *s = arena + used;
        size_t n = put_utf8(cp_of[b], s);
        str_map_put(&vocab, s, n, order_of[b]);
        memcpy(s + n, s, n);
        memcpy(s + n + n, "</w>", 4);
        str_map_put(&vocab, s + n, n + 4, 256 + order_of[b]);
        used += n + n + 4;
    }
    for (size_t i = 0; i < n_lines; i++) {
        char *s = arena + used;
        memcpy(s, lines[i].left, lines[i].left_len);
        memcpy(s + lines[i].left_len, lines[i].right, lines[i].right_len);
        size_t n = lines[i].left_len + lines[i].right_len;
        str_map_put(&vocab, s, n, (int32_t)(512 + i));
        used += n;
    }
    str_map_put(&vocab, "<|startoftext|>", 15, (int32_t)(512 + n_lines));
    str_map_put(&vocab, "<|endoftext|>", 13, (int32_t)(512 + n_lines + 1));
    rc = build(t, &vocab, vocab_size, lines, n_lines, "bpe_simple_vocab_16e6.txt", err);
    if (rc != M2P_OK) {
        goto fail;
    }
    m2p_free(vocab.slots);
    m2p_free(arena);
    m2p_free(lines);
    m2p_free(text);
    *out = t;
    return M2P_OK;
fail:
    m2p_free(vocab.slots);
    m2p_free(arena);
    m2p_free(lines);
    m2p_free(text);
    m2p_clip_tokenizer_free(t);
    return rc;
}

/* Builds a tokenizer from vocab.json text and merges.txt text; vname/mname
 * name them in error details. */
static m2p_code load_mem(const char *vtext, size_t vlen, const char *mtext, size_t mlen, const char *vname,
                         const char *mname, m2p_clip_tokenizer **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_OK;
    json_t *root = NULL;
    merge_line *lines = NULL;
    size_t n_lines = 0;
    str_map vocab = {0};
    m2p_clip_tokenizer *t = m2p_calloc(1, sizeof *t);
    if (t == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "tokenizer");
    }
    if (vlen > FILE_CAP || mlen > FILE_CAP) {
        rc = m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "tokenizer files over %u MiB", FILE_CAP >> 20);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb(vtext, vlen, 0, &jerr);
    if (!json_is_object(root) || json_object_size(root) == 0 || json_object_size(root) > VOCAB_CAP) {
        rc = m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "%s: %s", vname,
                           root == NULL ? jerr.text : "expected an object of token → id");
        goto fail;
    }
    if (!str_map_init(&vocab, json_object_size(root))) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "tokenizer vocabulary");
        goto fail;
    }
    const char *key;
    json_t *val;
    size_t max_id = 0;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= (json_int_t)VOCAB_CAP) {
            rc =
                m2p_error_set(err, M2P_E_TOKENIZER_INVALID, "%s: the id of a token is not a small whole number", vname);
            goto fail;
        }
        size_t id = (size_t)json_integer_value(val);
        max_id = id > max_id ? id : max_id;
        str_map_put(&vocab, key, strlen(key), (int32_t)id);
    }
    rc = split_merges(mtext, mlen, false, 0, mname, &lines, &n_lines, err);
    if (rc == M2P_OK) {
        rc = build(t, &vocab, max_id + 1, lines, n_lines, mname, err);
    }
    if (rc != M2P_OK) {
        goto fail;
    }
    m2p_free(vocab.slots);
    m2p_free(lines);
    json_decref(root);
    *out = t;
    return M2P_OK;
fail:
    m2p_free(vocab.slots);
    m2p_free(lines);
    json_decref(root);
    m2p_clip_tokenizer_free(t);
    return rc;
}

m2p_code m2p_clip_tokenizer_load_buffers(const char *vocab_json, size_t vocab_len, const char *merges,
                                         size_t merges_len, m2p_clip_tokenizer **out, m2p_error *err) {
    if (vocab_json == NULL || merges == NULL) {
        *out = NULL;
        return m2p_error_set(err, M2P_E_INVALID_ARG, "tokenizer data missing");
    }
    return load_mem(vocab_json, vocab_len, merges, merges_len, "vocab.json", "merges.txt", out, err);
}

m2p_code m2p_clip_tokenizer_load(const char *vocab_json_path, const char *merges_path, m2p_clip_tokenizer **out,
                                 m2p_error *err) {
    *out = NULL;
    if (vocab_json_path == NULL || merges_path == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "tokenizer paths missing");
    }
    char *vtext = NULL;
    size_t vlen = 0;
    char *mtext = NULL;
    size_t mlen = 0;
    m2p_code rc = m2p_fs_read_file(vocab_json_path, FILE_CAP, &vtext, &vlen, err);
    if (rc == M2P_OK) {
        rc = m2p_fs_read_file(merges_path, FILE_CAP, &mtext, &mlen, err);
    }
    if (rc == M2P_OK) {
        rc = load_mem(vtext, vlen, mtext, mlen, vocab_json_path, merges_path, out, err);
    }
    m2p_free(vtext);
    m2p_free(mtext);
    return rc;
}

int32_t m2p_clip_bos_id(const m2p_clip_tokenizer *t) {
    return t->bos;
}
int32_t m2p_clip_eos_id(const m2p_clip_tokenizer *t) {
    return t->eos;
}
int32_t m2p_clip_pad_id(const m2p_clip_tokenizer *t) {
    return t->pad;
}
size_t m2p_clip_vocab_size(const m2p_clip_tokenizer *t) {
    return t->vocab_size;
}

/* --- encoding ----------------------------------------------------------------------------------- */

/* Where encoded ids go: written up to cap, counted always. */
typedef struct sink {
    int32_t *ids;
    size_t cap;
    size_t n;
} sink;

static void sink_put(sink *s, int32_t id) {
    if (s->n < s->cap) {
        s->ids[s->n] = id;
    }
    s->n++;
}

/* Scratch space for BPE over one piece of n bytes (allocated per chunk). */
typedef struct bpe_work {
    int32_t *sym;  /* symbol id at each position */
    int32_t *next; /* next live position, -1 at the end */
    int32_t *prev; /* previous live position, -1 at the start */
    struct cand {
        int32_t rank, pos, left, right;
    } * heap; /* candidate merges, a min-heap by (rank, pos) */
    size_t n_heap;
} bpe_work;

static bool cand_less(const struct cand *a, const struct cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, struct cand c) {
    size_t i = w->n_heap++;
    w->heap[i] = c;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!cand_less(&w->heap[i], &w->heap[up])) {
            break;
        }
        struct cand tmp = w->heap[i];
        w->heap[i] = w->heap[up];
        w->heap[up] = tmp;
        i = up;
    }
}

static struct cand heap_pop(bpe_work *w) {
    struct cand top = w->heap[0];
    w->heap[0] = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < w->n_heap && cand_less(&w->heap[l], &w->heap[m])) {
            m = l;
        }
        if (r < w->n_heap && cand_less(&w->heap[r], &w->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        struct cand tmp = w->heap[i];
        w->heap[i] = w->heap[m];
        w->heap[m] = tmp;
        i = m;
    }
    return top;
}

static void push_pair(const m2p_clip_tokenizer *t, bpe_work *w, int32_t pos) {
    if (pos < 0 || w->next[pos] < 0) {
        return;
    }
    int32_t nx = w->next[pos];
    const pair_slot *ps = pair_get(t, w->sym[pos], w->sym[nx]);
    if (ps != NULL) {
        struct cand c = {ps->rank, pos, w->sym[pos], w->sym[nx]};
        heap_push(w, c);
    }
}

/* BPE of one piece's bytes. Merging the lowest (rank, position) candidate
 * first is the reference's "merge every occurrence of the best pair, left to
 * right" in O(n log n): a merge never creates a pair of its own rank, and
 * (for a well-formed merges list) only pairs of higher rank. */
static void bpe_piece(const m2p_clip_tokenizer *t, const uint8_t *bytes, size_t n, bpe_work *w, sink *out) {
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = i + 1 == n ? t->byte_id_w[bytes[i]] : t->byte_id[bytes[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        push_pair(t, w, (int32_t)i);
    }
    while (w->n_heap > 0) {
        struct cand c = heap_pop(w);
        int32_t nx = w->next[c.pos];
        /* Stale: the left symbol was merged away or changed, or its neighbour did. */
        if (w->sym[c.pos] != c.left || nx < 0 || w->sym[nx] != c.right) {
            continue;
        }
        const pair_slot *ps = pair_get(t, c.left, c.right);
        w->sym[c.pos] = ps->merged;
        w->sym[nx] = -1;
        w->next[c.pos] = w->next[nx];
        if (w->next[nx] >= 0) {
            w->prev[w->next[nx]] = c.pos;
        }
        push_pair(t, w, w->prev[c.pos]);
        push_pair(t, w, c.pos);
    }
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = w->next[i]) {
        sink_put(out, w->sym[i]);
    }
}

static bool is_letter(ucs4_t c) {
    return uc_is_general_category(c, UC_CATEGORY_L);
}
static bool is_number(ucs4_t c) {
    return uc_is_general_category(c, UC_CATEGORY_N);
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at cp[i], or 0. */
static size_t contraction(const uint32_t *cp, size_t n, size_t i) {
    if (cp[i] != '\'' || i + 1 >= n) {
        return 0;
    }
    uint32_t a = cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        return 2;
    }
    if (i + 2 < n) {
        uint32_t b = cp[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
            return 3;
        }
    }
    return 0;
}

/* Encodes one chunk of ordinary text (no special tokens). */
static m2p_code encode_chunk(const m2p_clip_tokenizer *t, const char *s, size_t n, sink *out, m2p_error *err) {
    if (n == 0) {
        return M2P_OK;
    }
    m2p_code rc = M2P_OK;
    uint32_t *cps = m2p_malloc_array(n, sizeof *cps);
    uint32_t *norm = NULL;
    uint32_t *low = NULL;
    uint8_t *bytes = NULL;
    bpe_work w = {0};
    if (cps == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "tokenizer");
    }
    /* UTF-8 → code points; invalid bytes become U+FFFD. */
    size_t n_cp = 0;
    for (size_t i = 0; i < n;) {
        ucs4_t uc = 0;
        int k = u8_mbtouc(&uc, (const uint8_t *)s + i, n - i);
        cps[n_cp++] = uc;
        i += k > 0 ? (size_t)k : 1;
    }
    size_t n_norm = 0;
    norm = u32_normalize(UNINORM_NFC, cps, n_cp, NULL, &n_norm); /* libunistring allocates with malloc */
    if (norm == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "tokenizer normalisation");
        goto done;
    }
    /* Whitespace runs → one space; lower case (U+0130 → "i̇" as full mapping). */
    size_t low_cap;
    if (!m2p_size_mul(n_norm, 2, &low_cap)) {
        rc = m2p_error_set(err, M2P_E_TOO_LARGE, "text");
        goto done;
    }
    low = m2p_malloc_array(low_cap + 1, sizeof *low);
    if (low == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "tokenizer");
        goto done;
    }
    size_t n_low = 0;
    for (size_t i = 0; i < n_norm; i++) {
        ucs4_t c = norm[i];
        if (uc_is_property_white_space(c)) {
            if (n_low == 0 || low[n_low - 1] != ' ') {
                low[n_low++] = ' ';
            }
            continue;
        }
        if (c == 0x130) {
            low[n_low++] = 'i';
            low[n_low++] = 0x307;
            continue;
        }
        low[n_low++] = uc_tolower(c);
    }
    /* Pieces: contraction | letters+ | one number | other+ ; spaces dropped. */
    size_t bytes_cap;
    if (!m2p_size_mul(n_low, 4, &bytes_cap)) {
        rc = m2p_error_set(err, M2P_E_TOO_LARGE, "text");
        goto done;
    }
    bytes = m2p_malloc(bytes_cap + 4);
    w.sym = m2p_malloc_array(bytes_cap + 4, sizeof *w.sym);
    w.next = m2p_malloc_array(bytes_cap + 4, sizeof *w.next);
    w.prev = m2p_malloc_array(bytes_cap + 4, sizeof *w.prev);
    w.heap = m2p_malloc_array(3 * (bytes_cap + 4), sizeof *w.heap);
    if (bytes == NULL || w.sym == NULL || w.next == NULL || w.prev == NULL || w.heap == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "tokenizer");
        goto done;
    }
    size_t i = 0;
    while (i < n_low) {
        uint32_t c = low[i];
        size_t j;
        if (c == ' ') {
            i++;
            continue;
        }
        size_t k = contraction(low, n_low, i);
        if (k > 0) {
            j = i + k;
        } else if (is_letter(c)) {
            j = i + 1;
            while (j < n_low && is_letter(low[j])) {
                j++;
            }
        } else if (is_number(c)) {
            j = i + 1;
        } else {
            j = i + 1;
            while (j < n_low && low[j] != ' ' && !is_letter(low[j]) && !is_number(low[j])) {
                j++;
            }
        }
        size_t nb = 0;
        for (size_t q = i; q < j; q++) {
            int wr = u8_uctomb(bytes + nb, low[q], 4);
            if (wr <= 0) { /* not encodable (surrogate): U+FFFD */
                wr = u8_uctomb(bytes + nb, 0xFFFD, 4);
            }
            nb += (size_t)wr;
        }
        bpe_piece(t, bytes, nb, &w, out);
        i = j;
    }
done:
    free(norm);
    m2p_free(cps);
    m2p_free(low);
    m2p_free(bytes);
    m2p_free(w.sym);
    m2p_free(w.next);
    m2p_free(w.prev);
    m2p_free(w.heap);
    return rc;
}

/* Encodes text: special tokens matched exactly in the raw text, the rest by chunk. */
static m2p_code encode(const m2p_clip_tokenizer *t, const char *text, sink *out, m2p_error *err) {
    if (t == NULL || text == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "no tokenizer or text");
    }
    size_t len = strnlen(text, M2P_CLIP_MAX_TEXT + 1);
    if (len > M2P_CLIP_MAX_TEXT) {
        return m2p_error_set(err, M2P_E_TOO_LARGE, "prompt text over %d bytes", M2P_CLIP_MAX_TEXT);
    }
    static const char k_sot[] = "<|startoftext|>";
    static const char k_eot[] = "<|endoftext|>";
    size_t start = 0;
    size_t i = 0;
    while (i < len) {
        size_t sl = 0;
        int32_t id = -1;
        if (text[i] == '<') {
            if (len - i >= sizeof k_sot - 1 && memcmp(text + i, k_sot, sizeof k_sot - 1) == 0) {
                sl = sizeof k_sot - 1;
                id = t->bos;
            } else if (len - i >= sizeof k_eot - 1 && memcmp(text + i, k_eot, sizeof k_eot - 1) == 0) {
                sl = sizeof k_eot - 1;
                id = t->eos;
            }
        }
        if (sl == 0) {
            i++;
            continue;
        }
        m2p_code rc = encode_chunk(t, text + start, i - start, out, err);
        if (rc != M2P_OK) {
            return rc;
        }
        sink_put(out, id);
        i += sl;
        start = i;
    }
    return encode_chunk(t, text + start, len - start, out, err);
}

m2p_code m2p_clip_tokenize(const m2p_clip_tokenizer *t, const char *text, int32_t *ids, int max_len, int *n_real,
                           m2p_error *err) {
    if (ids == NULL || max_len < 2) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "token buffer of %d entries (at least 2 needed)", max_len);
    }
    sink s = {ids + 1, (size_t)max_len - 2, 0};
    m2p_code rc = encode(t, text, &s, err);
    if (rc != M2P_OK) {
        return rc;
    }
    size_t body = s.n < s.cap ? s.n : s.cap;
    ids[0] = t->bos;
    ids[1 + body] = t->eos;
    for (size_t i = body + 2; i < (size_t)max_len; i++) {
        ids[i] = t->pad;
    }
    if (n_real != NULL) {
        *n_real = (int)(body + 2);
    }
    return M2P_OK;
}

m2p_code m2p_clip_count(const m2p_clip_tokenizer *t, const char *text, int *n_tokens, m2p_error *err) {
    sink s = {NULL, 0, 0};
    m2p_code rc = encode(t, text, &s, err);
    if (rc != M2P_OK) {
        return rc;
    }
    *n_tokens = s.n > (size_t)INT32_MAX - 2 ? INT32_MAX : (int)(s.n + 2);
    return M2P_OK;
}
