/*
 * quantize_model.c — `frugal quantize`: rewrite a GGUF model with quantized
 * weights, choosing each tensor's type as llama-quantize does.
 *
 * Flow: map the input (fr_gguf_open), copy every key/value into a writer,
 * append general.quantization_version and general.file_type, then for each
 * tensor in llama.cpp's order (by layer, then name) choose its type, convert it row by row (source row
 * → f32 → fr_quantize_row) into a buffer that the writer keeps until save,
 * and finally save (PATH.tmp~, renamed).  Tensors whose type does not
 * change are not copied: the writer reads them from the input mapping.
 *
 * Memory: the converted tensors (at most the output file's size) plus one
 * f32 row per thread.  Rows of a tensor are split across a fr_pool.
 *
 * Type choice (llama.cpp llama_tensor_get_type, non-MoE models, GGUF.md §8):
 *   - quantized: 2-D+ tensors named *weight, except norms, position and
 *     token-type embeddings and a few special tensors; the rest stay as
 *     they are, 1-D tensors become F32;
 *   - output.weight (token_embd.weight when the model has no output.weight)
 *     gets Q6_K for every quantized type other than Q8_0 (Q8_0 when its row
 *     is not a multiple of 256), unless --output-type says otherwise;
 *   - token_embd.weight takes --embd-type when given;
 *   - Q4_K_M/Q5_K_M: attn_v and ffn_down → Q6_K where use_more_bits,
 *     attn_qkv → Q5_K (Q4_K_M) or Q6_K (Q5_K_M); Q4_K_S: attn_v of the
 *     first 4 layers and ffn_down of the first n/8 → Q5_K;
 *   - rows not a multiple of 256 fall back (Q4_K→Q5_0, Q5_K→Q5_1,
 *     Q6_K→Q8_0), rows not a multiple of 32 → F16.
 * Not reproduced: llama.cpp's MoE (n_expert) and 70B-specific rules, the
 * IQ/Q2_K/Q3_K mixes (those types are not written).
 */
#include "engine/quantize_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "kernels/pool.h"
#include "kernels/quantize.h"
#include "kernels/types.h"

/* ---- parameters ---- */

static const struct {
    const char *name;
    int type, mix;
} type_names[] = {
    {"f32", FR_TYPE_F32, FR_QMIX_NONE},    {"f16", FR_TYPE_F16, FR_QMIX_NONE},
    {"bf16", FR_TYPE_BF16, FR_QMIX_NONE},  {"q8_0", FR_TYPE_Q8_0, FR_QMIX_NONE},
    {"q4_0", FR_TYPE_Q4_0, FR_QMIX_NONE},  {"q4_1", FR_TYPE_Q4_1, FR_QMIX_NONE},
    {"q5_0", FR_TYPE_Q5_0, FR_QMIX_NONE},  {"q5_1", FR_TYPE_Q5_1, FR_QMIX_NONE},
    {"q4_k", FR_TYPE_Q4_K, FR_QMIX_K_S},   {"q4_k_s", FR_TYPE_Q4_K, FR_QMIX_K_S},
    {"q5_k", FR_TYPE_Q5_K, FR_QMIX_K_S},   {"q5_k_s", FR_TYPE_Q5_K, FR_QMIX_K_S},
    {"q6_k", FR_TYPE_Q6_K, FR_QMIX_NONE},  {"q4_k_m", FR_TYPE_Q4_K, FR_QMIX_K_M},
    {"q5_k_m", FR_TYPE_Q5_K, FR_QMIX_K_M},
};

int fr_quantize_params_init(fr_quantize_params *p, const char *type_name) {
    memset(p, 0, sizeof *p);
    p->output_type = -1;
    p->embd_type = -1;
    p->n_threads = 1;
    for (size_t i = 0; type_name && i < sizeof type_names / sizeof type_names[0]; i++) {
        if (!strcasecmp(type_name, type_names[i].name)) {
            p->type = type_names[i].type;
            p->mix = type_names[i].mix;
            return 0;
        }
    }
    return fr_errf(FR_EINVAL, "unknown quantization type '%s'", type_name ? type_name : "");
}

uint32_t fr_quantize_ftype(const fr_quantize_params *p) {
    switch (p->type) {
    case FR_TYPE_F32: return 0;
    case FR_TYPE_F16: return 1;
    case FR_TYPE_Q4_0: return 2;
    case FR_TYPE_Q4_1: return 3;
    case FR_TYPE_Q8_0: return 7;
    case FR_TYPE_Q5_0: return 8;
    case FR_TYPE_Q5_1: return 9;
    case FR_TYPE_Q4_K: return p->mix == FR_QMIX_K_M ? 15 : 14;
    case FR_TYPE_Q5_K: return p->mix == FR_QMIX_K_M ? 17 : 16;
    case FR_TYPE_Q6_K: return 18;
    case FR_TYPE_BF16: return 32;
    }
    return 0;
}

/* ---- type choice ---- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

static bool is_quantized_type(int t) {
    return t != FR_TYPE_F32 && t != FR_TYPE_F16 && t != FR_TYPE_BF16;
}

/* llama.cpp: quantize only *weight tensors with 2+ dims, minus these. */
static bool wants_quantization(const char *name, int n_dims) {
    static const char *const skip[] = {
        "_norm.weight", "ffn_gate_inp.weight", "position_embd.weight", "token_types.weight",
        "ssm_conv1d.weight", "rel_pos_h.weight", "rel_pos_w.weight",
    };
    if (n_dims < 2 || !ends_with(name, "weight")) return false;
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strstr(name, skip[i])) return false;
    return true;
}

/* llama.cpp use_more_bits: the first and last eighth of the layers and
 * every third layer in between. */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

int fr_quantize_tensor_type(const fr_quantize_params *p, const char *name, int n_dims,
                            int64_t ne0, int src_type, bool has_output, int i_layer,
                            int n_layer) {
    if (!wants_quantization(name, n_dims)) return n_dims < 2 ? FR_TYPE_F32 : src_type;
    int t = p->type;
    const bool is_output = !strcmp(name, "output.weight") ||
                           (!has_output && !strcmp(name, "token_embd.weight"));
    if (is_output && p->output_type >= 0) {
        t = p->output_type;
    } else if (!strcmp(name, "token_embd.weight") && p->embd_type >= 0) {
        t = p->embd_type;
    } else if (is_quantized_type(p->type)) {
        if (is_output) {
            if (ne0 % FR_QK_K) t = FR_TYPE_Q8_0;
            else if (t != FR_TYPE_Q8_0) t = FR_TYPE_Q6_K;
        } else if (strstr(name, "attn_v.weight")) {
            if (p->mix == FR_QMIX_K_M && use_more_bits(i_layer, n_layer)) t = FR_TYPE_Q6_K;
            else if (p->mix == FR_QMIX_K_S && p->type == FR_TYPE_Q4_K && i_layer < 4)
                t = FR_TYPE_Q5_K;
        } else if (strstr(name, "ffn_down")) {
            if (p->mix == FR_QMIX_K_M && use_more_bits(i_layer, n_layer)) t = FR_TYPE_Q6_K;
            else if (p->mix == FR_QMIX_K_S && p->type == FR_TYPE_Q4_K && i_layer < n_layer / 8)
                t = FR_TYPE_Q5_K;
        } else if (strstr(name, "attn_qkv.weight") && p->mix == FR_QMIX_K_M) {
            t = p->type == FR_TYPE_Q4_K ? FR_TYPE_Q5_K : FR_TYPE_Q6_K;
        }
    }
    /* rows that do not fill whole blocks */
    if (t == FR_TYPE_Q4_K || t == FR_TYPE_Q5_K || t == FR_TYPE_Q6_K) {
        if (ne0 % FR_QK_K)
            t = t == FR_TYPE_Q4_K ? FR_TYPE_Q5_0 : t == FR_TYPE_Q5_K ? FR_TYPE_Q5_1 : FR_TYPE_Q8_0;
    }
    const fr_type_info *ti = fr_type_get(t);
    if (ti && ne0 % ti->blck) t = FR_TYPE_F16;
    return t;
}

/* ---- conversion ---- */

typedef struct convert_job {
    const fr_gguf_tensor *src;
    int to_type;
    int64_t ne0, nrows;
    size_t src_row, dst_row;     /* bytes per row */
    uint8_t *dst;
    float *rows;                 /* [nth][ne0] scratch */
} convert_job;

static void to_f32(int type, const uint8_t *src, float *dst, int64_t n) {
    if (type == FR_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = type == FR_TYPE_F16 ? fr_f16_to_f32(h) : fr_bf16_to_f32(h);
        }
    }
}

static void convert_rows(void *ctx, int ith, int nth) {
    convert_job *j = ctx;
    const int64_t per = (j->nrows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < j->nrows ? r0 + per : j->nrows;
    float *row = j->rows + (size_t)ith * (size_t)j->ne0;
    const uint8_t *src = j->src->data;
    for (int64_t r = r0; r < r1; r++) {
        to_f32(j->src->type, src + (size_t)r * j->src_row, row, j->ne0);
        /* cannot fail: the type is writable and ne0 fills whole blocks */
        fr_quantize_row(j->to_type, row, j->dst + (size_t)r * j->dst_row, j->ne0);
    }
}

/* llama.cpp's tensor order (weight_name_comparer): by the N of "blk.N."
 * (-1 for other tensors), then by name. */
static int layer_of(const char *name) {
    int v = -1;
    if (!strncmp(name, "blk.", 4)) {
        char *end;
        long l = strtol(name + 4, &end, 10);
        if (end != name + 4 && *end == '.' && l >= -1000000 && l <= 1000000) v = (int)l;
    }
    return v;
}

static int cmp_tensor(const void *a, const void *b) {
    const fr_gguf_tensor *x = *(const fr_gguf_tensor *const *)a;
    const fr_gguf_tensor *y = *(const fr_gguf_tensor *const *)b;
    int lx = layer_of(x->name), ly = layer_of(y->name);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Copy the key/values of g except general.quantization_version and
 * general.file_type, keeping their order: llama-quantize removes those two
 * and appends them at the end.  (The writer copies by prefix, so each key
 * is copied by its own full name.) */
static int copy_metadata(fr_gguf_writer *w, const fr_gguf *g) {
    for (int64_t i = 0; i < fr_gguf_n_kv(g); i++) {
        fr_gguf_str k = fr_gguf_key(g, i);
        char *key = fr_strndup(k.s, (size_t)k.len);
        if (!key) return FR_ENOMEM;
        int rc = 0;
        if (*key && strcmp(key, "general.quantization_version") && strcmp(key, "general.file_type"))
            rc = fr_gguf_writer_copy_kv(w, g, key);
        fr_free(key);
        if (rc) return rc;
    }
    return 0;
}

/* The first type in p that the quantizers cannot write, or -1. */
static int unwritable_type(const fr_quantize_params *p) {
    if (!fr_quantize_supported(p->type)) return p->type;
    if (p->output_type >= 0 && !fr_quantize_supported(p->output_type)) return p->output_type;
    if (p->embd_type >= 0 && !fr_quantize_supported(p->embd_type)) return p->embd_type;
    return -1;
}

/* llama.cpp's n_layer for the ffn_down rule: {arch}.block_count, else the
 * number of ffn_down tensors. */
static int block_count(const fr_gguf *g, int n_ffn_down) {
    fr_gguf_str arch;
    char key[96];
    uint32_t n;
    if (fr_gguf_get_str(g, "general.architecture", &arch) == 0 && arch.len < 64) {
        snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.s);
        if (fr_gguf_get_u32(g, key, &n) == 0 && n > 0 && n < 1000000) return (int)n;
    }
    return n_ffn_down;
}

int fr_quantize_model(const char *in, const char *out, const fr_quantize_params *p) {
    fr_gguf *g = NULL;
    fr_gguf_writer *w = NULL;
    fr_pool *pool = NULL;
    void **bufs = NULL;
    const fr_gguf_tensor **order = NULL;
    float *rows = NULL;
    int rc;

    if (unwritable_type(p) >= 0)
        return fr_errf(FR_EUNSUPP, "%s: cannot write type %s", out,
                       fr_type_name(unwritable_type(p)));
    const int n_threads = p->n_threads > 0 ? p->n_threads : 1;

    if ((rc = fr_gguf_open(in, &g))) goto done;
    const int64_t nt = fr_gguf_n_tensors(g);

    /* First pass: check sources, count attn_v/ffn_down, widest row. */
    bool has_output = false;
    int n_attn_v = 0, n_ffn_down = 0;
    int64_t max_ne0 = 1;
    for (int64_t i = 0; i < nt; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        if (t->type != FR_TYPE_F32 && t->type != FR_TYPE_F16 && t->type != FR_TYPE_BF16) {
            rc = fr_errf(FR_EUNSUPP, "%s: tensor '%s': source type %s is not f32, f16 or bf16",
                         in, t->name, fr_type_name(t->type));
            goto done;
        }
        if (!strcmp(t->name, "output.weight")) has_output = true;
        if (strstr(t->name, "attn_v.weight") || strstr(t->name, "attn_qkv.weight")) n_attn_v++;
        if (strstr(t->name, "ffn_down")) n_ffn_down++;
        if (t->ne[0] > max_ne0) max_ne0 = t->ne[0];
    }

    if ((rc = fr_gguf_writer_create(&w))) goto done;
    if ((rc = copy_metadata(w, g))) goto done;
    if ((rc = fr_gguf_writer_set_u32(w, "general.quantization_version", 2))) goto done;
    if ((rc = fr_gguf_writer_set_u32(w, "general.file_type", fr_quantize_ftype(p)))) goto done;

    size_t rows_bytes;
    if (!fr_mul_ok((size_t)max_ne0, (size_t)n_threads * sizeof(float), &rows_bytes)) {
        rc = fr_errf(FR_ENOMEM, "%s: rows of %lld elements", in, (long long)max_ne0);
        goto done;
    }
    bufs = fr_calloc(nt > 0 ? (size_t)nt : 1, sizeof *bufs);
    order = fr_calloc(nt > 0 ? (size_t)nt : 1, sizeof *order);
    rows = fr_malloc(rows_bytes);
    if (!bufs || !order || !rows) { rc = FR_ENOMEM; goto done; }
    for (int64_t i = 0; i < nt; i++) order[i] = fr_gguf_tensor_at(g, i);
    qsort(order, (size_t)nt, sizeof *order, cmp_tensor);
    if (n_threads > 1 && (rc = fr_pool_create(n_threads, &pool))) goto done;

    const int n_blocks = block_count(g, n_ffn_down);
    int i_attn_v = 0, i_ffn_down = 0;
    for (int64_t i = 0; i < nt; i++) {
        const fr_gguf_tensor *t = order[i];
        int i_layer = 0, n_layer = 0;
        if (strstr(t->name, "attn_v.weight")) {
            i_layer = i_attn_v++;
            n_layer = n_attn_v;
        } else if (strstr(t->name, "ffn_down")) {
            i_layer = i_ffn_down++;
            n_layer = n_blocks;
        }
        const int to = fr_quantize_tensor_type(p, t->name, t->n_dims, t->ne[0], t->type,
                                               has_output, i_layer, n_layer);
        const int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
        size_t src_row, dst_row, nbytes;
        if (!fr_type_row_size(t->type, t->ne[0], &src_row) ||
            !fr_type_row_size(to, t->ne[0], &dst_row) ||
            !fr_mul_ok(dst_row, (size_t)nrows, &nbytes)) {
            rc = fr_errf(FR_EFORMAT, "%s: tensor '%s': bad shape for %s", in, t->name,
                         fr_type_name(to));
            goto done;
        }
        const void *data = t->data;
        if (to != t->type && nbytes > 0) {
            uint8_t *dst = fr_malloc(nbytes);
            if (!dst) {
                rc = fr_errf(FR_ENOMEM, "%s: tensor '%s': %zu bytes", out, t->name, nbytes);
                goto done;
            }
            bufs[i] = dst;
            convert_job job = {.src = t, .to_type = to, .ne0 = t->ne[0], .nrows = nrows,
                               .src_row = src_row, .dst_row = dst_row, .dst = dst,
                               .rows = rows};
            fr_pool_run(pool, convert_rows, &job);
            data = dst;
        }
        if ((rc = fr_gguf_writer_add_tensor(w, t->name, to, t->n_dims, t->ne, data))) goto done;
        if (p->progress) p->progress(p->progress_ud, t->name, t->type, to, t->nbytes, nbytes);
    }
    rc = fr_gguf_writer_save(w, out);

done:
    fr_pool_destroy(pool);
    fr_gguf_writer_destroy(w);
    if (bufs)
        for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) fr_free(bufs[i]);
    fr_free(bufs);
    fr_free(order);
    fr_free(rows);
    fr_gguf_close(g);
    return rc;
}
