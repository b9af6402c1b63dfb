/*
 * test_gguf.c — the GGUF reader and writer.
 *
 * 1. Every file in testdata/models and testdata/vocab (written by llama.cpp)
 *    opens, with facts read from the files checked (architecture, sizes,
 *    tensor shapes, types, offsets, first values).
 * 2. A round trip through the writer with every value type, arrays and
 *    tensors of several types.
 * 3. Malformed images, assembled byte by byte: each must fail with
 *    FR_EFORMAT and a detail naming the file.
 * 4. The malloc-failure sweep: every failing allocation gives FR_ENOMEM
 *    and leaks nothing.
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/gguf_int.h"
#include "harness.h"
#include "kernels/types.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

/* ---- helpers ---- */

static bool str_is(fr_gguf_str s, const char *want) {
    return s.len == strlen(want) && memcmp(s.s, want, s.len) == 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && len > 0 && fread(p, 1, (size_t)len, f) != (size_t)len) { free(p); p = NULL; }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/frugal_test_gguf_%d_%s.gguf", (int)getpid(), tag);
}

/* A byte builder for hand-made images. */
typedef struct bytes { uint8_t *p; size_t n, cap; } bytes;

static void b_put(bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u32(bytes *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(bytes *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(bytes *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }
static void b_zeros(bytes *b, size_t n) { while (n--) { uint8_t z = 0; b_put(b, &z, 1); } }
static void b_pad(bytes *b, size_t a) { if (b->n % a) b_zeros(b, a - b->n % a); }
static void b_free(bytes *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

static void b_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(bytes *b, const char *key, uint32_t v) {
    b_str(b, key); b_u32(b, FR_GGUF_U32); b_u32(b, v);
}
static void b_kv_str(bytes *b, const char *key, const char *v) {
    b_str(b, key); b_u32(b, FR_GGUF_STRING); b_str(b, v);
}
static void b_tensor(bytes *b, const char *name, uint32_t n_dims, const int64_t *ne,
                     uint32_t type, uint64_t offset) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, (uint64_t)ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}

/* One tensor after one KV; the data section holds data_bytes zeros. */
static void one_tensor(bytes *b, const char *name, uint32_t n_dims, const int64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_bytes) {
    b_header(b, 3, 1, 1);
    b_kv_str(b, "general.name", "t");
    b_tensor(b, name, n_dims, ne, type, offset);
    b_pad(b, 32);
    b_zeros(b, data_bytes);
}

static int n_bad_cases;

/* The image must be rejected with FR_EFORMAT and a detail naming it. */
static void expect_bad(const char *name, const bytes *b, const char *why) {
    fr_gguf *g = (fr_gguf *)1;
    size_t before = fr_mem_in_use();
    fr_errclear();
    int rc = fr_gguf_parse(b->p, b->n, name, &g);
    n_bad_cases++;
    CHECK_MSG(rc == FR_EFORMAT, "%s (%s): rc %d (%s), want EFORMAT", name, why, rc,
              fr_errname(rc));
    CHECK_MSG(g == NULL, "%s: out not cleared", name);
    CHECK_MSG(strstr(fr_errdetail(), name) != NULL, "%s: detail '%s' lacks the name", name,
              fr_errdetail());
    CHECK_MSG(fr_mem_in_use() == before, "%s: leaked %zu bytes", name,
              fr_mem_in_use() - before);
    if (getenv("GGUF_TEST_VERBOSE")) printf("  %-28s %s\n", name, fr_errdetail());
    if (rc == 0) fr_gguf_close(g);
}

static void expect_good(const char *name, const bytes *b) {
    fr_gguf *g = NULL;
    int rc = fr_gguf_parse(b->p, b->n, name, &g);
    CHECK_MSG(rc == 0, "%s: rc %d: %s", name, rc, fr_errdetail());
    fr_gguf_close(g);
}

/* ---- 1. llama.cpp's files ---- */

static void check_all_open(const char *dir, int want_files) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", harness_testdata(), dir);
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "cannot open %s", path);
    if (!d) return;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        fr_gguf *g = NULL;
        int rc = fr_gguf_open(p, &g);
        CHECK_MSG(rc == 0, "%s: %s", p, fr_errdetail());
        if (rc) continue;
        files++;
        fr_gguf_str arch;
        CHECK(fr_gguf_get_str(g, "general.architecture", &arch) == 0 && arch.len > 0);
        CHECK_INT(fr_gguf_version(g), 3);
        CHECK_INT(fr_gguf_alignment(g), 32);
        uint64_t n_tok = 0;
        int et = -1;
        CHECK(fr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, NULL) == 0);
        CHECK_INT(et, FR_GGUF_STRING);
        /* Every tensor lies inside the file, in order, aligned. */
        const uint8_t *base = fr_gguf_base(g);
        uint64_t end = 0;
        for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
            const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
            CHECK((const uint8_t *)t->data >= base + fr_gguf_data_offset(g));
            CHECK((const uint8_t *)t->data + t->nbytes <= base + fr_gguf_file_size(g));
            CHECK(t->offset % 32 == 0 && t->offset >= end);
            CHECK(fr_gguf_find_tensor(g, t->name) == t);
            end = t->offset + t->nbytes;
        }
        char buf[256];
        for (int64_t i = 0; i < fr_gguf_n_kv(g); i++) {
            fr_gguf_format_value(g, i, buf, sizeof buf, 4);
            CHECK(buf[0] != 0 && strlen(buf) < sizeof buf);
            fr_gguf_str k = fr_gguf_key(g, i);
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)k.len, k.s);
            CHECK(fr_gguf_find_key(g, key) == i);
        }
        fr_gguf_close(g);
    }
    closedir(d);
    CHECK_INT(files, want_files);
}

static fr_gguf *open_td(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", harness_testdata(), rel);
    fr_gguf *g = NULL;
    int rc = fr_gguf_open(p, &g);
    CHECK_MSG(rc == 0, "%s: %s", p, fr_errdetail());
    return g;
}

static void check_tensor(const fr_gguf *g, const char *name, int type, int n_dims, int64_t ne0,
                         int64_t ne1, uint64_t offset) {
    const fr_gguf_tensor *t = fr_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECK_INT(t->type, type);
    CHECK_INT(t->n_dims, n_dims);
    CHECK_INT(t->ne[0], ne0);
    CHECK_INT(t->ne[1], ne1);
    CHECK_INT(t->ne[2], 1);
    CHECK_INT(t->ne[3], 1);
    CHECK_INT(t->offset, offset);
}

static void test_llama_files(void) {
    fr_gguf *g = open_td("models/tiny-llama-q8_0.gguf");
    if (!g) return;
    fr_gguf_str s;
    uint32_t u;
    float f;
    bool b;
    int64_t i64;
    CHECK(fr_gguf_get_str(g, "general.architecture", &s) == 0 && str_is(s, "llama"));
    CHECK(fr_gguf_get_str(g, "general.name", &s) == 0 && str_is(s, "tiny-llama"));
    CHECK(fr_gguf_get_u32(g, "llama.embedding_length", &u) == 0 && u == 256);
    CHECK(fr_gguf_get_u32(g, "llama.block_count", &u) == 0 && u == 2);
    CHECK(fr_gguf_get_u32(g, "llama.feed_forward_length", &u) == 0 && u == 768);
    CHECK(fr_gguf_get_u32(g, "llama.attention.head_count_kv", &u) == 0 && u == 2);
    CHECK(fr_gguf_get_u32(g, "general.file_type", &u) == 0 && u == 7);
    CHECK(fr_gguf_get_i64(g, "llama.context_length", &i64) == 0 && i64 == 1024);
    CHECK(fr_gguf_get_f32(g, "llama.rope.freq_base", &f) == 0 && f == 10000.0f);
    CHECK(fr_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0 &&
          f == 1e-5f);
    CHECK(fr_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0 && b);
    CHECK(fr_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == 0 && !b);
    CHECK_INT(fr_gguf_n_kv(g), 24);
    CHECK_INT(fr_gguf_n_tensors(g), 21);
    CHECK_INT(fr_gguf_data_offset(g), 180000);
    CHECK_INT(fr_gguf_file_size(g), 6312736);
    fr_gguf_str k = fr_gguf_key(g, 0);
    CHECK(str_is(k, "general.architecture"));
    CHECK_INT(fr_gguf_kv_type(g, 0), FR_GGUF_STRING);
    CHECK_INT(fr_gguf_kv_type(g, fr_gguf_find_key(g, "tokenizer.ggml.add_bos_token")),
              FR_GGUF_BOOL);

    int et;
    uint64_t count;
    const void *data;
    CHECK(fr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data) == 0);
    CHECK_INT(et, FR_GGUF_STRING);
    CHECK_INT(count, 8192);
    CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 0, &s) == 0 && str_is(s, "<unk>"));
    CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 2, &s) == 0 && str_is(s, "</s>"));
    CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 8190, &s) == 0 && str_is(s, "kte"));
    CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 8191, &s) == 0 &&
          str_is(s, "f\xc3\xa9rences"));
    CHECK_INT(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 8192, &s), FR_ERANGE);
    CHECK(fr_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &count, &data) == 0);
    CHECK_INT(et, FR_GGUF_F32);
    CHECK_INT(count, 8192);
    float last;
    memcpy(&last, (const uint8_t *)data + 8191 * 4, 4);
    CHECK(last == -7932.0f);
    CHECK(fr_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count, &data) == 0);
    CHECK_INT(et, FR_GGUF_I32);
    int32_t tt[3];
    memcpy(tt, data, sizeof tt);
    CHECK(tt[0] == 2 && tt[1] == 3 && tt[2] == 3);

    check_tensor(g, "token_embd.weight", FR_TYPE_Q8_0, 2, 256, 8192, 2229248);
    check_tensor(g, "output.weight", FR_TYPE_Q8_0, 2, 256, 8192, 0);
    check_tensor(g, "output_norm.weight", FR_TYPE_F32, 1, 256, 1, 2228224);
    check_tensor(g, "blk.0.attn_k.weight", FR_TYPE_Q8_0, 2, 256, 128, 4457472);
    check_tensor(g, "blk.1.ffn_up.weight", FR_TYPE_Q8_0, 2, 256, 768, 5923840);
    CHECK(fr_gguf_find_tensor(g, "blk.2.ffn_up.weight") == NULL);
    const fr_gguf_tensor *t = fr_gguf_find_tensor(g, "token_embd.weight");
    if (t) {
        CHECK_INT(t->nbytes, 8192 * 8 * 34);
        static const uint8_t first[8] = {0x96, 0x23, 0x75, 0xa0, 0x45, 0x7f, 0x05, 0x1c};
        CHECK(memcmp(t->data, first, 8) == 0);
    }
    fr_gguf_close(g);

    g = open_td("models/tiny-llama-f32.gguf");
    if (g) {
        t = fr_gguf_find_tensor(g, "output_norm.weight");
        CHECK(t != NULL);
        if (t) {
            float v[2];
            memcpy(v, t->data, sizeof v);
            CHECK_NEAR(v[0], 0.952161431312561, 1e-7);
            CHECK_NEAR(v[1], 0.9552194476127625, 1e-7);
        }
        CHECK(fr_gguf_find_key(g, "general.quantization_version") < 0);
        fr_gguf_close(g);
    }

    g = open_td("models/tiny-llama-q4_k_m.gguf");
    if (g) {
        check_tensor(g, "output.weight", FR_TYPE_Q6_K, 2, 256, 8192, 0);
        check_tensor(g, "token_embd.weight", FR_TYPE_Q4_K, 2, 256, 8192, 1721344);
        CHECK(fr_gguf_get_u32(g, "general.file_type", &u) == 0 && u == 15);
        fr_gguf_close(g);
    }

    g = open_td("models/tiny-qwen2-q8_0.gguf");
    if (g) {
        CHECK(fr_gguf_get_str(g, "general.architecture", &s) == 0 && str_is(s, "qwen2"));
        CHECK(fr_gguf_get_str(g, "tokenizer.ggml.model", &s) == 0 && str_is(s, "gpt2"));
        CHECK(fr_gguf_get_f32(g, "qwen2.rope.freq_base", &f) == 0 && f == 1e6f);
        CHECK(fr_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 50256);
        CHECK(fr_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &count, NULL) == 0);
        CHECK_INT(count, 50000);
        CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.merges", 0, &s) == 0 &&
              str_is(s, "\xc4\xa0 t"));
        CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 50256, &s) == 0 &&
              str_is(s, "<|endoftext|>"));
        check_tensor(g, "token_embd.weight", FR_TYPE_Q8_0, 2, 256, 50257, 1024);
        check_tensor(g, "blk.0.attn_k.bias", FR_TYPE_F32, 1, 128, 1, 13670944);
        CHECK(fr_gguf_find_tensor(g, "output.weight") == NULL);   /* tied */
        CHECK_INT(fr_gguf_n_tensors(g), 26);
        fr_gguf_close(g);
    }

    g = open_td("models/tiny-bert-q8_0.gguf");
    if (g) {
        CHECK(fr_gguf_get_str(g, "general.architecture", &s) == 0 && str_is(s, "bert"));
        CHECK(fr_gguf_get_bool(g, "bert.attention.causal", &b) == 0 && !b);
        CHECK(fr_gguf_get_u32(g, "bert.pooling_type", &u) == 0 && u == 1);
        CHECK(fr_gguf_get_f32(g, "bert.attention.layer_norm_epsilon", &f) == 0 && f == 1e-12f);
        check_tensor(g, "position_embd.weight", FR_TYPE_F32, 2, 256, 512, 0);
        check_tensor(g, "token_embd.weight", FR_TYPE_Q8_0, 2, 256, 30522, 524288);
        CHECK_INT(fr_gguf_n_tensors(g), 37);
        fr_gguf_close(g);
    }

    g = open_td("vocab/ggml-vocab-llama-spm.gguf");
    if (g) {
        CHECK_INT(fr_gguf_n_tensors(g), 0);
        CHECK_INT(fr_gguf_n_kv(g), 22);
        CHECK(fr_gguf_get_u32(g, "llama.vocab_size", &u) == 0 && u == 32000);
        CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 31999, &s) == 0 &&
              str_is(s, "\xe7\xbb\x99"));
        fr_gguf_close(g);
    }
    g = open_td("vocab/ggml-vocab-gpt-2.gguf");
    if (g) {
        CHECK(fr_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0 && str_is(s, "gpt-2"));
        CHECK(fr_gguf_get_arr_str(g, "tokenizer.ggml.merges", 49999, &s) == 0 &&
              str_is(s, "\xc4\xa0g azed"));
        fr_gguf_close(g);
    }
}

/* fr_gguf_parse on the bytes gives the same index as fr_gguf_open. */
static void test_parse_matches_open(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/tiny-qwen2-q8_0.gguf", harness_testdata());
    size_t n;
    uint8_t *img = slurp(p, &n);
    CHECK(img != NULL);
    if (!img) return;
    fr_gguf *a = NULL, *b = NULL;
    CHECK(fr_gguf_open(p, &a) == 0);
    CHECK(fr_gguf_parse(img, n, "qwen", &b) == 0);
    if (a && b) {
        CHECK_STR(fr_gguf_path(b), "qwen");
        CHECK_INT(fr_gguf_n_kv(a), fr_gguf_n_kv(b));
        CHECK_INT(fr_gguf_n_tensors(a), fr_gguf_n_tensors(b));
        CHECK_INT(fr_gguf_data_offset(a), fr_gguf_data_offset(b));
        for (int64_t i = 0; i < fr_gguf_n_tensors(a); i++) {
            const fr_gguf_tensor *x = fr_gguf_tensor_at(a, i), *y = fr_gguf_tensor_at(b, i);
            CHECK(!strcmp(x->name, y->name) && x->nbytes == y->nbytes);
            CHECK(memcmp(x->data, y->data, x->nbytes) == 0);
        }
    }
    fr_gguf_close(a);
    fr_gguf_close(b);
    free(img);
}

/* Re-saving llama.cpp's files through the writer (all pairs copied, all
 * tensors added with their mapped data) reproduces them byte for byte.
 * One vocabulary file was padded to the alignment by the tool that made
 * it; there only the padding differs. */
static void test_resave_identical(void) {
    static const char *files[] = {
        "models/tiny-bert-f16.gguf", "models/tiny-bert-q8_0.gguf",
        "models/tiny-bert-rerank-q8_0.gguf", "models/tiny-llama-f16.gguf",
        "models/tiny-llama-f32.gguf", "models/tiny-llama-q4_0.gguf",
        "models/tiny-llama-q4_k_m.gguf", "models/tiny-llama-q6_k.gguf",
        "models/tiny-llama-q8_0.gguf", "models/tiny-qwen2-q8_0.gguf",
        "vocab/ggml-vocab-bert-bge.gguf", "vocab/ggml-vocab-deepseek-coder.gguf",
        "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-gpt2-pre-llama-bpe.gguf",
        "vocab/ggml-vocab-llama-spm.gguf",
    };
    char out[256];
    tmp_path(out, sizeof out, "resave");
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        fr_gguf *g = open_td(files[f]), *h = NULL;
        if (!g) continue;
        fr_gguf_writer *w = NULL;
        CHECK(fr_gguf_writer_create(&w) == 0);
        CHECK(fr_gguf_writer_copy_kv(w, g, NULL) == 0);
        for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
            const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
            CHECK(fr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == 0);
        }
        CHECK(fr_gguf_writer_save(w, out) == 0);
        fr_gguf_writer_destroy(w);
        CHECK(fr_gguf_open(out, &h) == 0);
        if (h) {
            size_t a = fr_gguf_file_size(g), b = fr_gguf_file_size(h);
            const uint8_t *pa = fr_gguf_base(g), *pb = fr_gguf_base(h);
            bool padded = strstr(files[f], "pre-llama-bpe") != NULL;
            CHECK_MSG(padded ? (b < a && a - b < 32 && a % 32 == 0) : a == b,
                      "%s: %zu bytes, resaved %zu", files[f], a, b);
            size_t n = a < b ? a : b;
            CHECK_MSG(memcmp(pa, pb, n) == 0, "%s: resaved bytes differ", files[f]);
            for (size_t i = n; i < a; i++) CHECK(pa[i] == 0);
            fr_gguf_close(h);
        }
        fr_gguf_close(g);
    }
    unlink(out);
}

/* ---- 2. round trip ---- */

static void fmt(const fr_gguf *g, const char *key, size_t max_items, char *buf, size_t cap) {
    int64_t i = fr_gguf_find_key(g, key);
    CHECK_MSG(i >= 0, "key %s missing", key);
    buf[0] = 0;
    if (i >= 0) fr_gguf_format_value(g, i, buf, cap, max_items);
}

#define CHECK_FMT(g, key, items, want)                                        \
    do {                                                                      \
        char fb_[256];                                                        \
        fmt(g, key, items, fb_, sizeof fb_);                                  \
        CHECK_STR(fb_, want);                                                 \
    } while (0)

static void test_roundtrip(void) {
    char path[256];
    tmp_path(path, sizeof path, "rt");
    size_t mem0 = fr_mem_in_use();
    fr_gguf_writer *w = NULL;
    CHECK(fr_gguf_writer_create(&w) == 0);
    if (!w) return;

    uint8_t u8 = 250; int8_t i8 = -100; uint16_t u16 = 65000; int16_t i16 = -32000;
    uint64_t u64 = 18446744073709551615ull; int64_t i64 = INT64_MIN; double f64 = 0.1;
    CHECK(fr_gguf_writer_set_scalar(w, "t.u8", FR_GGUF_U8, &u8) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.i8", FR_GGUF_I8, &i8) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.u16", FR_GGUF_U16, &u16) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.i16", FR_GGUF_I16, &i16) == 0);
    CHECK(fr_gguf_writer_set_u32(w, "t.u32", 4000000000u) == 0);
    CHECK(fr_gguf_writer_set_i32(w, "t.i32", -2000000000) == 0);
    CHECK(fr_gguf_writer_set_f32(w, "t.f32", 0.1f) == 0);
    CHECK(fr_gguf_writer_set_bool(w, "t.bool", true) == 0);
    CHECK(fr_gguf_writer_set_str(w, "t.str", "hello \"w\"\n\t\x01") == 0);
    CHECK(fr_gguf_writer_set_str(w, "t.empty", "") == 0);
    CHECK(fr_gguf_writer_set_strn(w, "t.nul", "a\0b", 3) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.u64", FR_GGUF_U64, &u64) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.i64", FR_GGUF_I64, &i64) == 0);
    CHECK(fr_gguf_writer_set_scalar(w, "t.f64", FR_GGUF_F64, &f64) == 0);
    CHECK_INT(fr_gguf_writer_set_scalar(w, "t.bad", FR_GGUF_STRING, &u8), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_set_scalar(w, "t.bad", 13, &u8), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_set_u32(w, "", 1), FR_EINVAL);
    /* replaced later: the value and type of the last set win */
    CHECK(fr_gguf_writer_set_str(w, "t.replaced", "old") == 0);

    uint8_t a_u8[3] = {1, 2, 255};
    int8_t a_i8[2] = {-1, 127};
    uint16_t a_u16[2] = {0, 65535};
    int16_t a_i16[2] = {-32768, 5};
    uint32_t a_u32[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int32_t a_i32[3] = {-7, 0, 7};
    float a_f32[3] = {1.5f, -0.25f, 3e38f};
    uint8_t a_bool[3] = {1, 0, 1};
    uint64_t a_u64[2] = {0, UINT64_MAX};
    int64_t a_i64[2] = {INT64_MIN, INT64_MAX};
    double a_f64[2] = {1e300, -2.5};
    struct { const char *key; int et; const void *d; uint64_t n; size_t es; } arrs[] = {
        {"a.u8", FR_GGUF_U8, a_u8, 3, 1},     {"a.i8", FR_GGUF_I8, a_i8, 2, 1},
        {"a.u16", FR_GGUF_U16, a_u16, 2, 2},  {"a.i16", FR_GGUF_I16, a_i16, 2, 2},
        {"a.u32", FR_GGUF_U32, a_u32, 10, 4}, {"a.i32", FR_GGUF_I32, a_i32, 3, 4},
        {"a.f32", FR_GGUF_F32, a_f32, 3, 4},  {"a.bool", FR_GGUF_BOOL, a_bool, 3, 1},
        {"a.u64", FR_GGUF_U64, a_u64, 2, 8},  {"a.i64", FR_GGUF_I64, a_i64, 2, 8},
        {"a.f64", FR_GGUF_F64, a_f64, 2, 8},  {"a.empty", FR_GGUF_U32, a_u32, 0, 4},
    };
    size_t n_arrs = sizeof arrs / sizeof arrs[0];
    for (size_t i = 0; i < n_arrs; i++)
        CHECK(fr_gguf_writer_set_arr(w, arrs[i].key, arrs[i].et, arrs[i].d, arrs[i].n) == 0);
    CHECK_INT(fr_gguf_writer_set_arr(w, "a.bad", FR_GGUF_ARRAY, a_u8, 1), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_set_arr(w, "a.bad", FR_GGUF_STRING, a_u8, 1), FR_EINVAL);
    const char *strs[] = {"zero", "", "two\"2\"", "\xe2\x82\xac"};
    CHECK(fr_gguf_writer_set_arr_str(w, "a.str", strs, NULL, 4) == 0);
    const char *bin[] = {"x\0y", "ab"};
    uint64_t bin_len[] = {3, 1};
    CHECK(fr_gguf_writer_set_arr_str(w, "a.bin", bin, bin_len, 2) == 0);
    CHECK(fr_gguf_writer_set_arr_str(w, "a.str_empty", strs, NULL, 0) == 0);
    CHECK(fr_gguf_writer_set_i32(w, "t.replaced", 42) == 0);

    /* tensors of several types; data patterns distinct per tensor */
    static float t_f32[4 * 3];
    static uint16_t t_f16[8];
    static uint8_t t_q8[2 * 2 * 34], t_q4k[144 * 2], t_i32[20];
    for (int i = 0; i < 12; i++) t_f32[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 8; i++) t_f16[i] = fr_f32_to_f16((float)i);
    for (size_t i = 0; i < sizeof t_q8; i++) t_q8[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof t_q4k; i++) t_q4k[i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < sizeof t_i32; i++) t_i32[i] = (uint8_t)(255 - i);
    int64_t ne_f32[2] = {4, 3}, ne_f16[1] = {8}, ne_q8[2] = {64, 2}, ne_q4k[4] = {256, 1, 2, 1},
            ne_i32[1] = {5}, ne_zero[2] = {0, 4};
    CHECK(fr_gguf_writer_add_tensor(w, "w.f32", FR_TYPE_F32, 2, ne_f32, t_f32) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.f16", FR_TYPE_F16, 1, ne_f16, t_f16) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.q8_0", FR_TYPE_Q8_0, 2, ne_q8, t_q8) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.empty", FR_TYPE_F32, 2, ne_zero, NULL) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.q4_k", FR_TYPE_Q4_K, 4, ne_q4k, t_q4k) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.i32", FR_TYPE_I32, 1, ne_i32, t_i32) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "w.zeros", FR_TYPE_F32, 2, ne_f32, NULL) == 0);
    /* rejected by the writer */
    CHECK_INT(fr_gguf_writer_add_tensor(w, "w.f32", FR_TYPE_F32, 2, ne_f32, t_f32), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_add_tensor(w, "w.bad", 4, 1, ne_f16, t_f16), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_add_tensor(w, "w.bad", FR_TYPE_Q8_0, 1, ne_f16, t_q8), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_add_tensor(w, "w.bad", FR_TYPE_F32, 5, ne_q4k, t_q8), FR_EINVAL);
    CHECK_INT(fr_gguf_writer_add_tensor(w, "", FR_TYPE_F32, 1, ne_f16, t_q8), FR_EINVAL);
    char long_name[80];
    memset(long_name, 'n', 64);
    long_name[64] = 0;
    CHECK_INT(fr_gguf_writer_add_tensor(w, long_name, FR_TYPE_F32, 1, ne_f16, t_q8), FR_EINVAL);
    long_name[63] = 0;   /* 63 bytes: the longest allowed */
    CHECK(fr_gguf_writer_add_tensor(w, long_name, FR_TYPE_F32, 1, ne_f16, t_f32) == 0);

    CHECK(fr_gguf_writer_save(w, path) == 0);
    CHECK_INT(fr_gguf_writer_save(w, "/nonexistent-dir/x.gguf"), FR_EIO);
    CHECK(strstr(fr_errdetail(), "/nonexistent-dir/x.gguf") != NULL);
    fr_gguf_writer_destroy(w);
    CHECK_INT(fr_mem_in_use(), mem0);

    fr_gguf *g = NULL;
    int rc = fr_gguf_open(path, &g);
    CHECK_MSG(rc == 0, "reopen: %s", fr_errdetail());
    if (!g) return;
    CHECK_INT(fr_gguf_version(g), 3);
    CHECK_INT(fr_gguf_alignment(g), 32);
    CHECK_INT(fr_gguf_data_offset(g) % 32, 0);
    CHECK_INT(fr_gguf_n_kv(g), 15 + (int64_t)n_arrs + 3);
    CHECK_INT(fr_gguf_n_tensors(g), 8);
    /* insertion order is kept */
    CHECK(str_is(fr_gguf_key(g, 0), "t.u8"));
    CHECK(str_is(fr_gguf_key(g, 14), "t.replaced"));
    CHECK_INT(fr_gguf_kv_type(g, 14), FR_GGUF_I32);

    uint32_t u;
    int64_t s64;
    uint64_t v64;
    float f;
    bool b;
    fr_gguf_str s;
    CHECK(fr_gguf_get_u32(g, "t.u8", &u) == 0 && u == 250);
    CHECK(fr_gguf_get_i64(g, "t.i8", &s64) == 0 && s64 == -100);
    CHECK(fr_gguf_get_u32(g, "t.u16", &u) == 0 && u == 65000);
    CHECK(fr_gguf_get_i64(g, "t.i16", &s64) == 0 && s64 == -32000);
    CHECK(fr_gguf_get_u32(g, "t.u32", &u) == 0 && u == 4000000000u);
    CHECK(fr_gguf_get_i64(g, "t.i32", &s64) == 0 && s64 == -2000000000);
    CHECK(fr_gguf_get_f32(g, "t.f32", &f) == 0 && f == 0.1f);
    CHECK(fr_gguf_get_bool(g, "t.bool", &b) == 0 && b);
    CHECK(fr_gguf_get_str(g, "t.str", &s) == 0 && str_is(s, "hello \"w\"\n\t\x01"));
    CHECK(fr_gguf_get_str(g, "t.empty", &s) == 0 && s.len == 0);
    CHECK(fr_gguf_get_str(g, "t.nul", &s) == 0 && s.len == 3 && !memcmp(s.s, "a\0b", 3));
    CHECK(fr_gguf_get_u64(g, "t.u64", &v64) == 0 && v64 == UINT64_MAX);
    CHECK(fr_gguf_get_i64(g, "t.i64", &s64) == 0 && s64 == INT64_MIN);
    CHECK(fr_gguf_get_f32(g, "t.f64", &f) == 0 && f == 0.1f);
    CHECK(fr_gguf_get_i64(g, "t.replaced", &s64) == 0 && s64 == 42);
    /* tolerant widths, range-checked */
    CHECK(fr_gguf_get_u64(g, "t.u16", &v64) == 0 && v64 == 65000);
    CHECK(fr_gguf_get_i64(g, "t.u32", &s64) == 0 && s64 == 4000000000);
    CHECK_INT(fr_gguf_get_u32(g, "t.i32", &u), FR_EFORMAT);    /* negative */
    CHECK(strstr(fr_errdetail(), "t.i32") != NULL);
    CHECK_INT(fr_gguf_get_u32(g, "t.u64", &u), FR_EFORMAT);    /* too big */
    CHECK_INT(fr_gguf_get_i64(g, "t.u64", &s64), FR_EFORMAT);  /* > INT64_MAX */
    CHECK_INT(fr_gguf_get_u64(g, "t.i64", &v64), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_u32(g, "t.f32", &u), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_u32(g, "t.bool", &u), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_f32(g, "t.u32", &f), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_bool(g, "t.u8", &b), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_str(g, "a.str", &s), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_arr(g, "t.str", NULL, NULL, NULL), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_arr_str(g, "a.u32", 0, &s), FR_EFORMAT);
    CHECK_INT(fr_gguf_get_u32(g, "t.missing", &u), FR_ENOENT);
    CHECK_INT(fr_gguf_get_str(g, "t.missing", &s), FR_ENOENT);
    CHECK_INT(fr_gguf_get_arr(g, "t.missing", NULL, NULL, NULL), FR_ENOENT);
    CHECK_INT(fr_gguf_find_key(g, "t"), -1);
    CHECK_INT(fr_gguf_kv_type(g, -1), -1);
    CHECK_INT(fr_gguf_key(g, 1000).len, 0);

    for (size_t i = 0; i < n_arrs; i++) {
        int et = -1;
        uint64_t n = 99;
        const void *d = NULL;
        CHECK(fr_gguf_get_arr(g, arrs[i].key, &et, &n, &d) == 0);
        CHECK_INT(et, arrs[i].et);
        CHECK_INT(n, arrs[i].n);
        CHECK_MSG(d && memcmp(d, arrs[i].d, arrs[i].n * arrs[i].es) == 0, "%s", arrs[i].key);
    }
    uint64_t n = 0;
    int et = -1;
    CHECK(fr_gguf_get_arr(g, "a.str", &et, &n, NULL) == 0 && et == FR_GGUF_STRING && n == 4);
    for (uint64_t j = 0; j < 4; j++)
        CHECK(fr_gguf_get_arr_str(g, "a.str", j, &s) == 0 && str_is(s, strs[j]));
    CHECK(fr_gguf_get_arr_str(g, "a.bin", 0, &s) == 0 && s.len == 3 && !memcmp(s.s, "x\0y", 3));
    CHECK(fr_gguf_get_arr_str(g, "a.bin", 1, &s) == 0 && s.len == 1 && s.s[0] == 'a');
    CHECK(fr_gguf_get_arr(g, "a.str_empty", &et, &n, NULL) == 0 && et == FR_GGUF_STRING &&
          n == 0);
    CHECK_INT(fr_gguf_get_arr_str(g, "a.str_empty", 0, &s), FR_ERANGE);

    /* formatting (expected texts written by hand) */
    CHECK_FMT(g, "t.u8", 4, "250");
    CHECK_FMT(g, "t.i8", 4, "-100");
    CHECK_FMT(g, "t.u32", 4, "4000000000");
    CHECK_FMT(g, "t.i32", 4, "-2000000000");
    CHECK_FMT(g, "t.f32", 4, "0.1");
    CHECK_FMT(g, "t.f64", 4, "0.1");
    CHECK_FMT(g, "t.bool", 4, "true");
    CHECK_FMT(g, "t.u64", 4, "18446744073709551615");
    CHECK_FMT(g, "t.i64", 4, "-9223372036854775808");
    CHECK_FMT(g, "t.str", 4, "\"hello \\\"w\\\"\\n\\t\\x01\"");
    CHECK_FMT(g, "t.empty", 4, "\"\"");
    CHECK_FMT(g, "t.nul", 4, "\"a\\x00b\"");
    CHECK_FMT(g, "a.u32", 3, "[1, 2, 3, ... (10 items)]");
    CHECK_FMT(g, "a.u32", 10, "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
    CHECK_FMT(g, "a.u32", 0, "[... (10 items)]");
    CHECK_FMT(g, "a.f32", 8, "[1.5, -0.25, 3e+38]");
    CHECK_FMT(g, "a.bool", 8, "[true, false, true]");
    CHECK_FMT(g, "a.i64", 8, "[-9223372036854775808, 9223372036854775807]");
    CHECK_FMT(g, "a.f64", 8, "[1e+300, -2.5]");
    CHECK_FMT(g, "a.str", 8, "[\"zero\", \"\", \"two\\\"2\\\"\", \"\xe2\x82\xac\"]");
    CHECK_FMT(g, "a.str", 2, "[\"zero\", \"\", ... (4 items)]");
    CHECK_FMT(g, "a.empty", 8, "[]");
    CHECK_FMT(g, "a.str_empty", 8, "[]");
    {
        char small[8];
        fmt(g, "a.u32", 10, small, sizeof small);
        CHECK_STR(small, "[1, ...");   /* cut to the buffer, marked */
        fmt(g, "t.u8", 10, small, 1);
        CHECK_STR(small, "");
    }

    struct { const char *name; int type, n_dims; const int64_t *ne; const void *data;
             size_t nbytes; } ts[] = {
        {"w.f32", FR_TYPE_F32, 2, ne_f32, t_f32, sizeof t_f32},
        {"w.f16", FR_TYPE_F16, 1, ne_f16, t_f16, sizeof t_f16},
        {"w.q8_0", FR_TYPE_Q8_0, 2, ne_q8, t_q8, sizeof t_q8},
        {"w.empty", FR_TYPE_F32, 2, ne_zero, NULL, 0},
        {"w.q4_k", FR_TYPE_Q4_K, 4, ne_q4k, t_q4k, sizeof t_q4k},
        {"w.i32", FR_TYPE_I32, 1, ne_i32, t_i32, sizeof t_i32},
        {"w.zeros", FR_TYPE_F32, 2, ne_f32, NULL, 48},
        {long_name, FR_TYPE_F32, 1, ne_f16, t_f32, 32},
    };
    uint64_t want_off = 0;
    for (int i = 0; i < 8; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK_STR(t->name, ts[i].name);
        CHECK(fr_gguf_find_tensor(g, ts[i].name) == t);
        CHECK_INT(t->type, ts[i].type);
        CHECK_INT(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < 4; d++) CHECK_INT(t->ne[d], d < ts[i].n_dims ? ts[i].ne[d] : 1);
        CHECK_INT(t->nbytes, ts[i].nbytes);
        CHECK_INT(t->offset, want_off);
        want_off += (ts[i].nbytes + 31) / 32 * 32;
        if (ts[i].data) CHECK(memcmp(t->data, ts[i].data, ts[i].nbytes) == 0);
        else {
            for (size_t k = 0; k < t->nbytes; k++) CHECK(((const uint8_t *)t->data)[k] == 0);
        }
        CHECK_INT(((const uint8_t *)t->data - (const uint8_t *)fr_gguf_base(g)) % 32, 0);
    }
    CHECK(fr_gguf_tensor_at(g, 8) == NULL);
    CHECK(fr_gguf_tensor_at(g, -1) == NULL);
    CHECK_INT(fr_gguf_file_size(g), fr_gguf_data_offset(g) + want_off);

    /* copy_kv with a filter, then everything with a replacement and
     * another alignment */
    char path2[256];
    tmp_path(path2, sizeof path2, "copy");
    CHECK(fr_gguf_writer_create(&w) == 0);
    CHECK(fr_gguf_writer_copy_kv(w, g, "a.") == 0);
    CHECK(fr_gguf_writer_save(w, path2) == 0);
    fr_gguf_writer_destroy(w);
    fr_gguf *g2 = NULL;
    CHECK(fr_gguf_open(path2, &g2) == 0);
    if (g2) {
        CHECK_INT(fr_gguf_n_kv(g2), (int64_t)n_arrs + 3);
        CHECK_INT(fr_gguf_n_tensors(g2), 0);
        CHECK(fr_gguf_find_key(g2, "t.u8") < 0);
        CHECK(fr_gguf_get_arr_str(g2, "a.str", 3, &s) == 0 && str_is(s, "\xe2\x82\xac"));
        fr_gguf_close(g2);
    }
    CHECK(fr_gguf_writer_create(&w) == 0);
    CHECK(fr_gguf_writer_set_str(w, "t.u8", "first") == 0);
    CHECK(fr_gguf_writer_copy_kv(w, g, NULL) == 0);       /* replaces t.u8 */
    CHECK(fr_gguf_writer_set_str(w, "t.str", "new") == 0);
    CHECK(fr_gguf_writer_set_u32(w, "general.alignment", 64) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "x", FR_TYPE_F32, 1, ne_f16, t_f32) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "y", FR_TYPE_F16, 1, ne_f16, t_f16) == 0);
    CHECK(fr_gguf_writer_save(w, path2) == 0);
    fr_gguf_writer_destroy(w);
    CHECK(fr_gguf_open(path2, &g2) == 0);
    if (g2) {
        CHECK_INT(fr_gguf_n_kv(g2), fr_gguf_n_kv(g) + 1);
        CHECK_INT(fr_gguf_alignment(g2), 64);
        CHECK_INT(fr_gguf_data_offset(g2) % 64, 0);
        CHECK(fr_gguf_get_u32(g2, "t.u8", &u) == 0 && u == 250);
        CHECK(fr_gguf_get_str(g2, "t.str", &s) == 0 && str_is(s, "new"));
        CHECK(fr_gguf_get_u32(g2, "general.alignment", &u) == 0 && u == 64);
        const fr_gguf_tensor *y = fr_gguf_find_tensor(g2, "y");
        CHECK(y && y->offset == 64 && !memcmp(y->data, t_f16, 16));
        for (int64_t i = 0; i < fr_gguf_n_kv(g); i++) {   /* raw values equal */
            fr_gguf_str k = fr_gguf_key(g, i);
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)k.len, k.s);
            if (!strcmp(key, "t.str")) continue;
            int64_t j = fr_gguf_find_key(g2, key);
            CHECK_MSG(j >= 0 && g->kv[i].raw_len == g2->kv[j].raw_len &&
                      !memcmp(g->kv[i].raw, g2->kv[j].raw, g->kv[i].raw_len), "copy %s", key);
        }
        fr_gguf_close(g2);
    }
    /* rewrite the file in place from its own mapping (the writer renames a
     * temporary over it, so the mapping stays valid while it reads) */
    CHECK(fr_gguf_writer_create(&w) == 0);
    CHECK(fr_gguf_writer_copy_kv(w, g, NULL) == 0);
    for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        CHECK(fr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == 0);
    }
    CHECK(fr_gguf_writer_save(w, path) == 0);
    fr_gguf_writer_destroy(w);
    CHECK(fr_gguf_open(path, &g2) == 0);
    if (g2) {
        CHECK_INT(fr_gguf_file_size(g2), fr_gguf_file_size(g));
        CHECK(memcmp(fr_gguf_base(g2), fr_gguf_base(g), fr_gguf_file_size(g)) == 0);
        fr_gguf_close(g2);
    }
    /* an invalid alignment is refused at save */
    CHECK(fr_gguf_writer_create(&w) == 0);
    CHECK(fr_gguf_writer_set_u32(w, "general.alignment", 48) == 0);
    CHECK_INT(fr_gguf_writer_save(w, path2), FR_EINVAL);
    CHECK(fr_gguf_writer_set_i32(w, "general.alignment", 64) == 0);
    CHECK_INT(fr_gguf_writer_save(w, path2), FR_EINVAL);
    fr_gguf_writer_destroy(w);

    fr_gguf_close(g);
    CHECK_INT(fr_mem_in_use(), mem0);
    unlink(path);
    unlink(path2);
}

/* ---- 3. malformed images ---- */

#define BAD(name, why, ...)                                                   \
    do {                                                                      \
        bytes b_ = {0};                                                       \
        bytes *b = &b_;                                                       \
        __VA_ARGS__;                                                          \
        expect_bad(name, b, why);                                             \
        b_free(b);                                                            \
    } while (0)

static void test_malformed_header(void) {
    BAD("empty.gguf", "0 bytes", (void)b);
    BAD("three.gguf", "3 bytes", b_put(b, "GGU", 3));
    BAD("magic.gguf", "wrong magic", b_put(b, "GGUX", 4); b_u32(b, 3); b_u64(b, 0); b_u64(b, 0));
    BAD("magic-lc.gguf", "lower-case magic", b_put(b, "gguf", 4); b_u32(b, 3); b_u64(b, 0);
        b_u64(b, 0));
    BAD("v0.gguf", "version 0", b_header(b, 0, 0, 0));
    BAD("v1.gguf", "version 1", b_header(b, 1, 0, 0));
    BAD("v4.gguf", "version 4", b_header(b, 4, 0, 0));
    BAD("v-big-endian.gguf", "version 3 big-endian", b_header(b, 0x03000000u, 0, 0));
    BAD("v-huge.gguf", "version 0xffffffff", b_header(b, 0xffffffffu, 0, 0));
    BAD("n_kv-huge.gguf", "n_kv 2^40", b_header(b, 3, 0, 1ull << 40); b_kv_u32(b, "a", 1));
    BAD("n_kv-max.gguf", "n_kv 2^63-1", b_header(b, 3, 0, INT64_MAX));
    BAD("n_tensors-huge.gguf", "n_tensors 2^40", b_header(b, 3, 1ull << 40, 0); b_zeros(b, 64));
    BAD("n_kv-neg.gguf", "n_kv -1", b_header(b, 3, 0, UINT64_MAX); b_zeros(b, 64));
    BAD("n_tensors-neg.gguf", "n_tensors -1", b_header(b, 3, UINT64_MAX, 0); b_zeros(b, 64));
    /* 2 pairs of 13+ bytes do not fit in 20 bytes */
    BAD("n_kv-vs-bytes.gguf", "n_kv 2 in 20 bytes", b_header(b, 3, 0, 2); b_zeros(b, 20));
    BAD("counts-truncated.gguf", "n_kv cut", b_put(b, "GGUF", 4); b_u32(b, 3); b_u64(b, 0);
        b_u32(b, 0));
}

static void test_malformed_kv(void) {
    BAD("key-len-past-end.gguf", "key length 1000", b_header(b, 3, 0, 1); b_u64(b, 1000);
        b_put(b, "abc", 3); b_u32(b, 4); b_u32(b, 1));
    BAD("key-len-2p63.gguf", "key length 2^63", b_header(b, 3, 0, 1); b_u64(b, 1ull << 63);
        b_put(b, "abcde", 5); b_u32(b, 4); b_u32(b, 1));
    BAD("key-len-max.gguf", "key length 2^64-1", b_header(b, 3, 0, 1); b_u64(b, UINT64_MAX);
        b_put(b, "abcde", 5); b_u32(b, 4); b_u32(b, 1));
    BAD("key-empty.gguf", "empty key", b_header(b, 3, 0, 1); b_str(b, ""); b_u32(b, 4);
        b_u32(b, 1); b_zeros(b, 8));
    BAD("key-dup.gguf", "duplicate key", b_header(b, 3, 0, 2); b_kv_u32(b, "a.b", 1);
        b_kv_str(b, "a.b", "x"));
    BAD("vtype-13.gguf", "value type 13", b_header(b, 3, 0, 1); b_str(b, "k"); b_u32(b, 13);
        b_u32(b, 1));
    BAD("vtype-neg.gguf", "value type -1", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, 0xffffffffu); b_u32(b, 1));
    BAD("elem-type-13.gguf", "array element type 13", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_ARRAY); b_u32(b, 13); b_u64(b, 1); b_u32(b, 0));
    BAD("nested-array.gguf", "array of arrays", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_ARRAY); b_u64(b, 1);
        b_u32(b, FR_GGUF_U8); b_u64(b, 1); b_zeros(b, 1));
    BAD("array-count-huge.gguf", "u32 array of 2^61", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_U32); b_u64(b, 1ull << 61); b_zeros(b, 64));
    BAD("array-count-wraps.gguf", "u64 array of 2^61 (bytes wrap to 0)", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_U64); b_u64(b, 1ull << 61));
    BAD("array-count-past-end.gguf", "u16 array of 5 in 8 bytes", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_U16); b_u64(b, 5);
        b_zeros(b, 8));
    BAD("str-array-count-huge.gguf", "string array of 2^60", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_STRING); b_u64(b, 1ull << 60);
        b_str(b, "a"); b_str(b, "b"));
    BAD("str-array-elem-len.gguf", "element length 2^64-1", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_STRING); b_u64(b, 2);
        b_str(b, "a"); b_u64(b, UINT64_MAX); b_zeros(b, 16));
    BAD("str-array-elem-cut.gguf", "second element cut", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_ARRAY); b_u32(b, FR_GGUF_STRING); b_u64(b, 2);
        b_str(b, "a"); b_u64(b, 10); b_put(b, "abc", 3));
    BAD("str-len-past-end.gguf", "string value length 100", b_header(b, 3, 0, 1);
        b_str(b, "k"); b_u32(b, FR_GGUF_STRING); b_u64(b, 100); b_put(b, "abc", 3));
    BAD("bool-truncated.gguf", "bool value missing", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_BOOL));
    BAD("u64-truncated.gguf", "u64 value of 4 bytes", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_U64); b_u32(b, 1));
    BAD("f64-truncated.gguf", "f64 value of 7 bytes", b_header(b, 3, 0, 1); b_str(b, "k");
        b_u32(b, FR_GGUF_F64); b_zeros(b, 7));
    BAD("vtype-truncated.gguf", "value type cut", b_header(b, 3, 0, 1); b_str(b, "kkkkk");
        b_put(b, "\x04\x00", 2));
    BAD("second-kv-cut.gguf", "second key cut", b_header(b, 3, 0, 2);
        b_kv_u32(b, "a", 1); b_u64(b, 5); b_put(b, "ab", 2));
    BAD("second-kv-missing.gguf", "n_kv 2, one present", b_header(b, 3, 0, 2);
        b_kv_u32(b, "a", 1); b_zeros(b, 2));
    BAD("align-0.gguf", "alignment 0", b_header(b, 3, 0, 1); b_kv_u32(b, "general.alignment", 0));
    BAD("align-3.gguf", "alignment 3", b_header(b, 3, 0, 1); b_kv_u32(b, "general.alignment", 3));
    BAD("align-48.gguf", "alignment 48", b_header(b, 3, 0, 1);
        b_kv_u32(b, "general.alignment", 48));
    BAD("align-u64.gguf", "alignment as u64", b_header(b, 3, 0, 1);
        b_str(b, "general.alignment"); b_u32(b, FR_GGUF_U64); b_u64(b, 32));
    BAD("align-str.gguf", "alignment as string", b_header(b, 3, 0, 1);
        b_kv_str(b, "general.alignment", "32"));
}

static void test_malformed_tensors(void) {
    const int64_t ne1[1] = {8}, ne2[2] = {32, 2};
    BAD("t-name-empty.gguf", "empty name", one_tensor(b, "", 1, ne1, 0, 0, 32));
    char n64[65];
    memset(n64, 'x', 64);
    n64[64] = 0;
    BAD("t-name-64.gguf", "name of 64 bytes", one_tensor(b, n64, 1, ne1, 0, 0, 32));
    BAD("t-name-nul.gguf", "NUL in name", b_header(b, 3, 1, 0); b_u64(b, 3);
        b_put(b, "a\0b", 3); b_u32(b, 1); b_u64(b, 8); b_u32(b, 0); b_u64(b, 0); b_pad(b, 32);
        b_zeros(b, 32));
    BAD("t-name-past-end.gguf", "name length 2^40", b_header(b, 3, 1, 0); b_u64(b, 1ull << 40);
        b_zeros(b, 40));
    BAD("t-dup.gguf", "duplicate name", b_header(b, 3, 2, 0); b_tensor(b, "w", 1, ne1, 0, 0);
        b_tensor(b, "w", 1, ne1, 0, 32); b_pad(b, 32); b_zeros(b, 64));
    BAD("t-ndims-0.gguf", "n_dims 0", one_tensor(b, "w", 0, ne1, 0, 0, 32));
    BAD("t-ndims-5.gguf", "n_dims 5", b_header(b, 3, 1, 0); b_str(b, "w"); b_u32(b, 5);
        for (int i = 0; i < 5; i++) b_u64(b, 1); b_u32(b, 0); b_u64(b, 0); b_pad(b, 32);
        b_zeros(b, 32));
    BAD("t-ndims-huge.gguf", "n_dims 2^31", b_header(b, 3, 1, 0); b_str(b, "w");
        b_u32(b, 0x80000000u); b_zeros(b, 64));
    const int64_t neg[2] = {8, -1};
    BAD("t-dim-neg.gguf", "ne[1] = -1", one_tensor(b, "w", 2, neg, 0, 0, 32));
    const int64_t big[2] = {1ll << 32, 1ll << 32};
    BAD("t-dims-overflow.gguf", "2^32 x 2^32 elements", one_tensor(b, "w", 2, big, 0, 0, 32));
    const int64_t big4[4] = {1ll << 20, 1ll << 20, 1ll << 20, 1ll << 20};
    BAD("t-dims-overflow4.gguf", "(2^20)^4 elements", one_tensor(b, "w", 4, big4, 0, 0, 32));
    const int64_t bytes_ovf[1] = {1ll << 62};
    BAD("t-bytes-overflow.gguf", "2^62 f32 = 2^64 bytes", one_tensor(b, "w", 1, bytes_ovf,
        FR_TYPE_F32, 0, 32));
    static const uint32_t bad_types[] = {4, 5, 31, 32, 33, 36, 43, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "t-type-%u.gguf", bad_types[i]);
        BAD(name, "unknown type id", one_tensor(b, "w", 1, ne1, bad_types[i], 0, 64));
    }
    const int64_t q33[1] = {33};
    BAD("t-q8-33.gguf", "q8_0 ne[0] = 33", one_tensor(b, "w", 1, q33, FR_TYPE_Q8_0, 0, 128));
    const int64_t k128[2] = {128, 2};
    BAD("t-q4k-128.gguf", "q4_k ne[0] = 128", one_tensor(b, "w", 2, k128, FR_TYPE_Q4_K, 0, 512));
    BAD("t-offset-unaligned.gguf", "offset 4", one_tensor(b, "w", 1, ne1, 0, 4, 64));
    BAD("t-offset-past-end.gguf", "offset 4096", one_tensor(b, "w", 1, ne1, 0, 4096, 64));
    BAD("t-offset-huge.gguf", "offset near 2^64", one_tensor(b, "w", 1, ne1, 0,
        UINT64_MAX - 31, 64));
    BAD("t-data-past-end.gguf", "32 bytes with 31 present", one_tensor(b, "w", 1, ne1, 0, 0, 31));
    BAD("t-data-past-end2.gguf", "second tensor cut", b_header(b, 3, 2, 0);
        b_tensor(b, "a", 1, ne1, 0, 0); b_tensor(b, "b", 2, ne2, 0, 32); b_pad(b, 32);
        b_zeros(b, 32 + 200));
    BAD("t-overlap.gguf", "second starts inside first", b_header(b, 3, 2, 0);
        b_tensor(b, "a", 2, ne2, 0, 0); b_tensor(b, "b", 1, ne1, 0, 224); b_pad(b, 32);
        b_zeros(b, 512));
    BAD("t-same-offset.gguf", "both at 0", b_header(b, 3, 2, 0);
        b_tensor(b, "a", 1, ne1, 0, 0); b_tensor(b, "b", 1, ne1, 0, 0); b_pad(b, 32);
        b_zeros(b, 64));
    BAD("t-out-of-order.gguf", "second before first", b_header(b, 3, 2, 0);
        b_tensor(b, "a", 1, ne1, 0, 64); b_tensor(b, "b", 1, ne1, 0, 0); b_pad(b, 32);
        b_zeros(b, 128));
    BAD("t-align-64.gguf", "offset 32 with alignment 64", b_header(b, 3, 2, 1);
        b_kv_u32(b, "general.alignment", 64); b_tensor(b, "a", 1, ne1, 0, 0);
        b_tensor(b, "b", 1, ne1, 0, 32); b_pad(b, 64); b_zeros(b, 128));
    BAD("t-missing-record.gguf", "n_tensors 2, one record (padding read as a record)", b_header(b, 3, 2, 0);
        b_tensor(b, "a", 1, ne1, 0, 0); b_pad(b, 32); b_zeros(b, 64));

    /* positive controls: the same shapes made valid */
    bytes ok = {0};
    one_tensor(&ok, "w", 1, ne1, 0, 0, 32);
    expect_good("ok-one.gguf", &ok);
    b_free(&ok);
    char n63[64];
    memset(n63, 'x', 63);
    n63[63] = 0;
    one_tensor(&ok, n63, 1, ne1, 0, 0, 32);
    expect_good("ok-63.gguf", &ok);
    b_free(&ok);
    b_header(&ok, 3, 2, 1);
    b_kv_u32(&ok, "general.alignment", 64);
    b_tensor(&ok, "a", 1, ne1, 0, 0);
    b_tensor(&ok, "b", 1, ne1, 0, 128);   /* gaps are allowed */
    b_pad(&ok, 64);
    b_zeros(&ok, 160);
    expect_good("ok-gap.gguf", &ok);
    b_free(&ok);
    b_header(&ok, 2, 0, 1);               /* version 2 */
    b_kv_u32(&ok, "general.alignment", 1);
    expect_good("ok-v2.gguf", &ok);
    b_free(&ok);
}

/* Every proper prefix of a valid file (cut after the magic, the version,
 * the counts, inside and after each pair, each tensor record, inside the
 * padding and inside the data) is rejected. */
static void test_truncation(void) {
    const int64_t ne1[1] = {8}, ne2[2] = {32, 2};
    bytes full = {0};
    b_header(&full, 3, 2, 3);
    b_kv_str(&full, "general.architecture", "llama");
    b_str(&full, "tokens");
    b_u32(&full, FR_GGUF_ARRAY);
    b_u32(&full, FR_GGUF_STRING);
    b_u64(&full, 3);
    b_str(&full, "a");
    b_str(&full, "");
    b_str(&full, "ccc");
    b_str(&full, "f");
    b_u32(&full, FR_GGUF_F64);
    b_zeros(&full, 8);
    b_tensor(&full, "a", 1, ne1, FR_TYPE_F32, 0);
    b_tensor(&full, "b", 2, ne2, FR_TYPE_Q8_0, 32);
    size_t infos_end = full.n;
    b_pad(&full, 32);
    CHECK(full.n > infos_end);      /* there is padding to cut into */
    b_zeros(&full, 32 + 68);
    expect_good("full.gguf", &full);
    int failures = 0;
    for (size_t n = 0; n < full.n; n++) {
        bytes cut = {full.p, n, n};
        fr_gguf *g = NULL;
        size_t before = fr_mem_in_use();
        fr_errclear();
        int rc = fr_gguf_parse(full.p, cut.n, "cut.gguf", &g);
        if (rc != FR_EFORMAT || !strstr(fr_errdetail(), "cut.gguf") ||
            fr_mem_in_use() != before) {
            failures++;
            HARNESS_FAIL("prefix of %zu bytes: rc %d, detail '%s'", n, rc, fr_errdetail());
        }
        fr_gguf_close(g);
    }
    CHECK_INT(failures, 0);
    b_free(&full);
}

static void test_open_errors(void) {
    fr_gguf *g = (fr_gguf *)1;
    int rc = fr_gguf_open("/nonexistent/dir/model.gguf", &g);
    CHECK(rc == FR_ENOENT || rc == FR_EIO);
    CHECK(g == NULL);
    CHECK(strstr(fr_errdetail(), "/nonexistent/dir/model.gguf") != NULL);
    CHECK_INT(fr_gguf_open("/tmp", &g), FR_EIO);

    /* a real model cut after 1 MB and after all but one byte */
    char src[1024], dst[256];
    snprintf(src, sizeof src, "%s/models/tiny-llama-q8_0.gguf", harness_testdata());
    tmp_path(dst, sizeof dst, "cut");
    size_t n;
    uint8_t *img = slurp(src, &n);
    CHECK(img != NULL);
    if (!img) return;
    size_t cuts[] = {1 << 20, n - 1, 100000, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *f = fopen(dst, "wb");
        CHECK(f != NULL);
        if (!f) break;
        CHECK(fwrite(img, 1, cuts[i], f) == cuts[i]);
        fclose(f);
        rc = fr_gguf_open(dst, &g);
        CHECK_MSG(rc == FR_EFORMAT, "cut at %zu: rc %d", cuts[i], rc);
        CHECK(strstr(fr_errdetail(), dst) != NULL);
    }
    unlink(dst);
    free(img);
}

/* ---- 4. malloc failures ---- */

static void test_alloc_failures(void) {
    char path[256];
    tmp_path(path, sizeof path, "oom");
    size_t mem0 = fr_mem_in_use();
    /* a small file with every kind of index: pairs, string arrays, tensors */
    fr_gguf_writer *w = NULL;
    CHECK(fr_gguf_writer_create(&w) == 0);
    if (!w) return;
    const char *strs[] = {"a", "bb", ""};
    const int64_t ne[2] = {64, 2};
    CHECK(fr_gguf_writer_set_str(w, "general.architecture", "llama") == 0);
    CHECK(fr_gguf_writer_set_arr_str(w, "tokens", strs, NULL, 3) == 0);
    CHECK(fr_gguf_writer_set_arr_str(w, "merges", strs, NULL, 2) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "a", FR_TYPE_Q8_0, 2, ne, NULL) == 0);
    CHECK(fr_gguf_writer_add_tensor(w, "b", FR_TYPE_F32, 2, ne, NULL) == 0);
    CHECK(fr_gguf_writer_save(w, path) == 0);
    fr_gguf_writer_destroy(w);
    size_t n;
    uint8_t *img = slurp(path, &n);
    CHECK(img != NULL);
    if (!img) return;

    for (int mode = 0; mode < 2; mode++) {
        int ok_at = -1;
        for (long k = 0; k < 100; k++) {
            fr_gguf *g = NULL;
            fr_mem_fail_after(k);
            int rc = mode ? fr_gguf_open(path, &g) : fr_gguf_parse(img, n, "oom.gguf", &g);
            fr_mem_fail_after(-1);
            if (rc == 0) {
                ok_at = (int)k;
                CHECK_INT(fr_gguf_n_tensors(g), 2);
                fr_gguf_close(g);
                CHECK_INT(fr_mem_in_use(), mem0);
                break;
            }
            CHECK_MSG(rc == FR_ENOMEM, "mode %d fail at %ld: rc %d", mode, k, rc);
            CHECK_MSG(g == NULL && fr_mem_in_use() == mem0, "mode %d fail at %ld: leak", mode, k);
        }
        /* g, path, kv, kv hash, 2 string tables, tensors, tensor hash */
        CHECK_INT(ok_at, 8);
    }

    /* the writer: each step may fail cleanly */
    int ok_at = -1;
    for (long k = 0; k < 100 && ok_at < 0; k++) {
        fr_mem_fail_after(k);
        int rc = fr_gguf_writer_create(&w);
        if (rc == 0) {
            fr_gguf *g = NULL;
            if (!(rc = fr_gguf_writer_set_u32(w, "x", 1)) &&
                !(rc = fr_gguf_writer_set_arr_str(w, "s", strs, NULL, 3)) &&
                !(rc = fr_gguf_writer_add_tensor(w, "t", FR_TYPE_F32, 2, ne, NULL)) &&
                !(rc = fr_gguf_parse(img, n, "copy.gguf", &g))) {
                rc = fr_gguf_writer_copy_kv(w, g, NULL);
                fr_gguf_close(g);
                if (!rc) rc = fr_gguf_writer_save(w, path);
            }
            fr_gguf_writer_destroy(w);
        }
        fr_mem_fail_after(-1);
        CHECK_MSG(rc == 0 || rc == FR_ENOMEM, "writer fail at %ld: rc %d", k, rc);
        CHECK_MSG(fr_mem_in_use() == mem0, "writer fail at %ld: leak", k);
        if (rc == 0) ok_at = (int)k;
    }
    CHECK(ok_at > 5);
    free(img);
    unlink(path);
}

int main(void) {
    check_all_open("models", 10);
    check_all_open("vocab", 5);
    test_llama_files();
    test_parse_matches_open();
    test_resave_identical();
    test_roundtrip();
    test_malformed_header();
    test_malformed_kv();
    test_malformed_tensors();
    test_truncation();
    test_open_errors();
    test_alloc_failures();
    printf("%d malformed images rejected\n", n_bad_cases);
    return harness_done();
}
