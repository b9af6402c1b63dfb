/*
 * test_quantize_model.c — `frugal quantize` end to end, against the files
 * llama-quantize wrote from the same tiny-llama-f32.gguf.
 *
 * For q8_0, q4_0, q4_k_m, q6_k and f16: quantize into /tmp, then
 *   - every tensor's type must equal the type in the testdata file of the
 *     same name (llama.cpp's per-tensor mix; mismatches are printed);
 *   - the file must be byte-identical to llama-quantize's (metadata order,
 *     tensor order, layouts and quantized bytes);
 *   - loaded with fr_model_open, the logits after each reference prompt
 *     must match those of the testdata file of the same type (cosine ≥
 *     0.9999 for q8_0, ≥ 0.998 for q4_0/q4_k_m; printed) and llama.cpp's
 *     own last_logits within the testdata README's bound.
 * Plus: the type-choice rules on hand-derived cases (GGUF.md §8), the
 * --output-type/--embd-type overrides, a non-float source (FR_EUNSUPP
 * naming the tensor), unknown TYPE names (FR_EINVAL; the CLI exits 2),
 * and every allocation failure (FR_ENOMEM, nothing leaked).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quantize_model.h"
#include "harness.h"
#include "kernels/types.h"

static char *path_of(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s/%s", harness_testdata(), dir, name);
    return buf;
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* Whole-file equality; prints the first differing offset. */
static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    long off = 0;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) {
            printf("  %s and %s differ at byte %ld\n", a, b, off);
            same = false;
        }
        if (ca == EOF || cb == EOF) break;
        off++;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Every tensor of ref exists in got with the same type and shape. */
static int type_mismatches(const fr_gguf *got, const fr_gguf *ref) {
    int bad = 0;
    CHECK_INT(fr_gguf_n_tensors(got), fr_gguf_n_tensors(ref));
    for (int64_t i = 0; i < fr_gguf_n_tensors(ref); i++) {
        const fr_gguf_tensor *r = fr_gguf_tensor_at(ref, i);
        const fr_gguf_tensor *g = fr_gguf_find_tensor(got, r->name);
        if (!g) {
            printf("  missing tensor %s\n", r->name);
            bad++;
        } else if (g->type != r->type || memcmp(g->ne, r->ne, sizeof g->ne)) {
            printf("  %s: %s, llama.cpp has %s\n", r->name, fr_type_name(g->type),
                   fr_type_name(r->type));
            bad++;
        }
    }
    return bad;
}

static int32_t *json_tokens(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *t = fr_malloc(*n * sizeof *t + 1);
    for (size_t i = 0; t && i < *n; i++) t[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return t;
}

/* Run each reference prompt of refs/tiny-llama-<type>.json on our file
 * and on the testdata file; compare the last logits. */
static void compare_logits(const char *type, const char *ours, double cos_min) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "tiny-llama-%s.json", type);
    json_error_t jerr;
    json_t *root = json_load_file(path_of(path, sizeof path, "refs", name), 0, &jerr);
    CHECK_MSG(root, "%s: %s", path, jerr.text);
    if (!root) return;
    fr_model *m1 = NULL, *m2 = NULL;
    fr_ctx *c1 = NULL, *c2 = NULL;
    snprintf(name, sizeof name, "tiny-llama-%s.gguf", type);
    int rc = fr_model_open(ours, &m1);
    CHECK_MSG(rc == 0, "open %s: %s", ours, fr_errdetail());
    rc = rc ? rc : fr_model_open(path_of(path, sizeof path, "models", name), &m2);
    CHECK_MSG(rc == 0, "open %s: %s", path, fr_errdetail());
    if (!rc) CHECK_INT(fr_ctx_create(m1, 0, NULL, &c1), 0);
    if (!rc) CHECK_INT(fr_ctx_create(m2, 0, NULL, &c2), 0);
    if (c1 && c2) {
        const int32_t n_vocab = fr_model_hparams(m1)->n_vocab;
        float *keep = fr_malloc((size_t)n_vocab * sizeof(float));
        float *llama = fr_malloc((size_t)n_vocab * sizeof(float));
        json_t *cases = json_object_get(root, "cases");
        CHECK(json_array_size(cases) > 0 && keep && llama);
        for (size_t ci = 0; keep && llama && ci < json_array_size(cases); ci++) {
            json_t *cs = json_array_get(cases, ci);
            size_t n_tok;
            int32_t *tok = json_tokens(json_object_get(cs, "tokens"), &n_tok);
            const char *lf = json_string_value(json_object_get(cs, "last_logits"));
            const float *l1, *l2;
            fr_ctx_reset(c1);
            fr_ctx_reset(c2);
            CHECK_INT(fr_ctx_eval(c1, tok, (int32_t)n_tok, &l1), 0);
            memcpy(keep, l1, (size_t)n_vocab * sizeof(float));
            CHECK_INT(fr_ctx_eval(c2, tok, (int32_t)n_tok, &l2), 0);
            double c = cosine(keep, l2, n_vocab);
            /* llama.cpp's logits for the same prompt (README bound 0.995) */
            double cl = -1;
            FILE *f = lf ? fopen(path_of(path, sizeof path, "refs", lf), "rb") : NULL;
            if (f && fread(llama, sizeof(float), (size_t)n_vocab, f) == (size_t)n_vocab)
                cl = cosine(keep, llama, n_vocab);
            if (f) fclose(f);
            printf("%-7s p%zu: %2zu tokens, cosine vs testdata file %.7f, vs llama.cpp %.7f\n",
                   type, ci, n_tok, c, cl);
            CHECK_MSG(c >= cos_min, "%s p%zu: cosine %.7f < %.4f", type, ci, c, cos_min);
            CHECK_MSG(cl >= 0.995, "%s p%zu: cosine vs llama.cpp %.7f < 0.995", type, ci, cl);
            fr_free(tok);
        }
        fr_free(keep);
        fr_free(llama);
    }
    fr_ctx_destroy(c1);
    fr_ctx_destroy(c2);
    fr_model_close(m1);
    fr_model_close(m2);
    json_decref(root);
}

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/frugal-test-quantize-%ld-%s.gguf", (long)getpid(), tag);
}

static void test_against_llama_quantize(void) {
    static const struct {
        const char *type;
        double cos_min;   /* 0: no forward-pass comparison */
    } cases[] = {
        {"q8_0", 0.9999}, {"q4_0", 0.998}, {"q4_k_m", 0.998}, {"q6_k", 0.0}, {"f16", 0.0},
    };
    char src[1024], ref[1024], out[256], name[64];
    path_of(src, sizeof src, "models", "tiny-llama-f32.gguf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_quantize_params p;
        CHECK_INT(fr_quantize_params_init(&p, cases[i].type), 0);
        p.n_threads = 2;
        tmp_path(out, sizeof out, cases[i].type);
        int rc = fr_quantize_model(src, out, &p);
        CHECK_MSG(rc == 0, "quantize %s: %s", cases[i].type, fr_errdetail());
        if (rc) continue;
        snprintf(name, sizeof name, "tiny-llama-%s.gguf", cases[i].type);
        path_of(ref, sizeof ref, "models", name);
        fr_gguf *g = NULL, *r = NULL;
        CHECK_INT(fr_gguf_open(out, &g), 0);
        CHECK_INT(fr_gguf_open(ref, &r), 0);
        if (g && r) {
            int bad = type_mismatches(g, r);
            printf("%-7s tensor types: %d mismatches with %s\n", cases[i].type, bad, name);
            CHECK_INT(bad, 0);
            uint32_t ft = 0, want = 1, qv = 0;
            CHECK_INT(fr_gguf_get_u32(g, "general.file_type", &ft), 0);
            CHECK_INT(fr_gguf_get_u32(r, "general.file_type", &want), 0);
            CHECK_INT(ft, want);
            CHECK_INT(fr_gguf_get_u32(g, "general.quantization_version", &qv), 0);
            CHECK_INT(qv, 2);
        }
        fr_gguf_close(g);
        fr_gguf_close(r);
        bool same = same_file(out, ref);
        printf("%-7s file %s byte-identical to llama-quantize's\n", cases[i].type,
               same ? "is" : "is NOT");
        CHECK_MSG(same, "%s: file differs from %s", cases[i].type, name);
        if (cases[i].cos_min > 0) compare_logits(cases[i].type, out, cases[i].cos_min);
        unlink(out);
    }
}

/* Hand-derived cases of GGUF.md §8 and llama.cpp's fallbacks. */
static void test_type_rules(void) {
    fr_quantize_params p;
    CHECK_INT(fr_quantize_params_init(&p, "Q4_K_M"), 0);
    CHECK_INT(p.type, FR_TYPE_Q4_K);
    CHECK_INT(fr_quantize_ftype(&p), 15);
    /* use_more_bits for 22 layers: 0, 1, 4, 7, 10, 13, 16, 19, 20, 21 */
    static const int more[22] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};
    for (int i = 0; i < 22; i++) {
        int want = more[i] ? FR_TYPE_Q6_K : FR_TYPE_Q4_K;
        CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_v.weight", 2, 2048, FR_TYPE_F32, true,
                                          i, 22), want);
        /* 5632 = 22·256: whole super-blocks */
        CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.ffn_down.weight", 2, 5632, FR_TYPE_F32,
                                          true, i, 22), want);
        CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_q.weight", 2, 2048, FR_TYPE_F32, true,
                                          i, 22), FR_TYPE_Q4_K);
    }
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.3.attn_qkv.weight", 2, 2048, FR_TYPE_F16, true,
                                      0, 0), FR_TYPE_Q5_K);
    /* output: Q6_K; tied token_embd is the output; untied stays Q4_K */
    CHECK_INT(fr_quantize_tensor_type(&p, "output.weight", 2, 2048, FR_TYPE_F16, true, 0, 0),
              FR_TYPE_Q6_K);
    CHECK_INT(fr_quantize_tensor_type(&p, "token_embd.weight", 2, 2048, FR_TYPE_F16, true, 0, 0),
              FR_TYPE_Q4_K);
    CHECK_INT(fr_quantize_tensor_type(&p, "token_embd.weight", 2, 2048, FR_TYPE_F16, false, 0, 0),
              FR_TYPE_Q6_K);
    /* rows of 896 (Qwen2 0.5B): not a multiple of 256 → Q5_0, output Q8_0;
     * rows of 100: not a multiple of 32 → F16 */
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_q.weight", 2, 896, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q5_0);
    CHECK_INT(fr_quantize_tensor_type(&p, "output.weight", 2, 896, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q8_0);
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_q.weight", 2, 100, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_F16);
    /* 1-D and norms stay F32, whatever the source */
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_norm.weight", 1, 2048, FR_TYPE_F16, true,
                                      0, 0), FR_TYPE_F32);
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.attn_q.bias", 1, 2048, FR_TYPE_BF16, true, 0, 0),
              FR_TYPE_F32);

    CHECK_INT(fr_quantize_params_init(&p, "q4_0"), 0);
    CHECK_INT(fr_quantize_ftype(&p), 2);
    CHECK_INT(fr_quantize_tensor_type(&p, "output.weight", 2, 2048, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q6_K);
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.1.attn_v.weight", 2, 2048, FR_TYPE_F32, true, 1, 2),
              FR_TYPE_Q4_0);
    CHECK_INT(fr_quantize_params_init(&p, "q8_0"), 0);
    CHECK_INT(fr_quantize_tensor_type(&p, "output.weight", 2, 2048, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q8_0);
    CHECK_INT(fr_quantize_params_init(&p, "q5_k"), 0);
    CHECK_INT(fr_quantize_ftype(&p), 16);
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.ffn_up.weight", 2, 896, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q5_1);
    CHECK_INT(fr_quantize_params_init(&p, "q6_k"), 0);
    CHECK_INT(fr_quantize_tensor_type(&p, "blk.0.ffn_up.weight", 2, 896, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_Q8_0);
    CHECK_INT(fr_quantize_params_init(&p, "f16"), 0);
    CHECK_INT(fr_quantize_ftype(&p), 1);
    CHECK_INT(fr_quantize_tensor_type(&p, "output.weight", 2, 2048, FR_TYPE_F32, true, 0, 0),
              FR_TYPE_F16);

    /* unknown names */
    CHECK_INT(fr_quantize_params_init(&p, "q3_k_xl"), FR_EINVAL);
    CHECK_INT(fr_quantize_params_init(&p, "q2_k"), FR_EINVAL);
    CHECK_INT(fr_quantize_params_init(&p, ""), FR_EINVAL);
}

/* --output-type / --embd-type override the mix. */
static void test_overrides(void) {
    char src[1024], out[256];
    path_of(src, sizeof src, "models", "tiny-llama-f16.gguf");
    tmp_path(out, sizeof out, "override");
    fr_quantize_params p;
    CHECK_INT(fr_quantize_params_init(&p, "q4_k_m"), 0);
    p.output_type = FR_TYPE_Q8_0;
    p.embd_type = FR_TYPE_Q5_0;
    int rc = fr_quantize_model(src, out, &p);
    CHECK_MSG(rc == 0, "quantize override: %s", fr_errdetail());
    fr_gguf *g = NULL;
    if (!rc && fr_gguf_open(out, &g) == 0) {
        const fr_gguf_tensor *t = fr_gguf_find_tensor(g, "output.weight");
        CHECK(t && t->type == FR_TYPE_Q8_0);
        t = fr_gguf_find_tensor(g, "token_embd.weight");
        CHECK(t && t->type == FR_TYPE_Q5_0);
        t = fr_gguf_find_tensor(g, "output_norm.weight");
        CHECK(t && t->type == FR_TYPE_F32);
        t = fr_gguf_find_tensor(g, "blk.1.ffn_down.weight");
        CHECK(t && t->type == FR_TYPE_Q6_K);
        fr_gguf_close(g);
        /* the mixed file loads */
        fr_model *m = NULL;
        CHECK_INT(fr_model_open(out, &m), 0);
        fr_model_close(m);
    }
    unlink(out);
}

static void test_errors(void) {
    char src[1024], out[256];
    fr_quantize_params p;
    CHECK_INT(fr_quantize_params_init(&p, "q4_0"), 0);
    tmp_path(out, sizeof out, "err");
    /* a quantized source: every 2-D tensor of this file is q8_0 */
    path_of(src, sizeof src, "models", "tiny-llama-q8_0.gguf");
    CHECK_INT(fr_quantize_model(src, out, &p), FR_EUNSUPP);
    CHECK_MSG(strstr(fr_errdetail(), "tensor '") && strstr(fr_errdetail(), "q8_0") &&
                  strstr(fr_errdetail(), "tiny-llama-q8_0.gguf"),
              "detail: %s", fr_errdetail());
    CHECK(access(out, F_OK) != 0);
    CHECK_INT(fr_quantize_model("/nonexistent/x.gguf", out, &p), FR_ENOENT);
    p.type = FR_TYPE_Q2_K;
    path_of(src, sizeof src, "models", "tiny-llama-f32.gguf");
    CHECK_INT(fr_quantize_model(src, out, &p), FR_EUNSUPP);

    /* the command: unknown TYPE and missing arguments are usage errors (2),
     * a failing quantization is 1 */
    const char *bin = getenv("FRUGAL_BIN");
    if (!bin) bin = "build/frugal";
    CHECK_MSG(access(bin, X_OK) == 0, "no frugal binary at %s (set FRUGAL_BIN)", bin);
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "%s quantize %s %s q3_k_xl 2>/dev/null >/dev/null", bin, src, out);
    int st = system(cmd);
    CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2);
    snprintf(cmd, sizeof cmd, "%s quantize %s %s 2>/dev/null >/dev/null", bin, src, out);
    st = system(cmd);
    CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2);
    snprintf(cmd, sizeof cmd, "%s quantize --output-type q9 %s %s q4_0 2>/dev/null >/dev/null",
             bin, src, out);
    st = system(cmd);
    CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2);
    path_of(src, sizeof src, "models", "tiny-llama-q8_0.gguf");
    snprintf(cmd, sizeof cmd, "%s quantize %s %s q4_0 2>/dev/null >/dev/null", bin, src, out);
    st = system(cmd);
    CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 1);
    CHECK(access(out, F_OK) != 0);
}

/* Every allocation failure comes back as FR_ENOMEM and leaks nothing. */
static void test_out_of_memory(void) {
    char src[1024], out[256];
    path_of(src, sizeof src, "models", "tiny-llama-f32.gguf");
    tmp_path(out, sizeof out, "oom");
    fr_quantize_params p;
    CHECK_INT(fr_quantize_params_init(&p, "q4_k_m"), 0);
    p.n_threads = 2;
    const size_t base = fr_mem_in_use();
    int n_fail = 0, rc = FR_ENOMEM;
    for (long n = 0; rc == FR_ENOMEM && n < 100000; n++) {
        fr_mem_fail_after(n);
        rc = fr_quantize_model(src, out, &p);
        fr_mem_fail_after(-1);
        CHECK_MSG(rc == 0 || rc == FR_ENOMEM, "fail after %ld: %d (%s)", n, rc, fr_errdetail());
        CHECK_MSG(fr_mem_in_use() == base, "fail after %ld: %zu bytes leaked", n,
                  fr_mem_in_use() - base);
        if (rc == FR_ENOMEM) n_fail++;
    }
    printf("out of memory: %d failing allocations tried, then success\n", n_fail);
    CHECK_INT(rc, 0);
    CHECK(n_fail > 0);
    unlink(out);
}

int main(void) {
    test_type_rules();
    test_against_llama_quantize();
    test_overrides();
    test_errors();
    test_out_of_memory();
    return harness_done();
}
