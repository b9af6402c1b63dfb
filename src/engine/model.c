/*
 * model.c — load a llama or qwen2 decoder, or a bert or nomic-bert encoder,
 * from GGUF (GGUF.md §3–§4).
 *
 * fr_model_open maps the file, reads the hyperparameters with llama.cpp's
 * defaults, finds every tensor the architecture needs and checks its shape
 * and type, then loads the tokenizer.  Nothing is copied: fr_weight and the
 * norm/bias pointers point into the mapping, which the model owns.
 *
 * Hyperparameters ({arch} = general.architecture):
 *   n_ctx_train  {arch}.context_length                 required
 *   n_embd       {arch}.embedding_length               required
 *   n_layer      {arch}.block_count                    required
 *   n_ff         {arch}.feed_forward_length            required
 *   n_head       {arch}.attention.head_count           required
 *   n_head_kv    {arch}.attention.head_count_kv        default n_head
 *   head_dim     {arch}.attention.key_length           default n_embd/n_head
 *   n_rot        {arch}.rope.dimension_count           default head_dim
 *   rms_eps      {arch}.attention.layer_norm_rms_epsilon required
 *   rope_base    {arch}.rope.freq_base                 default 10000
 *   freq_scale   1/{arch}.rope.scaling.factor (or rope.scale_linear), 1 if 0/absent;
 *                scaling type "linear" (default) or "none"; others unsupported
 *                unless the factor makes them a no-op.
 *   n_vocab      rows of token_embd, which must equal the tokenizer's size.
 *
 * Per-layer arrays (variable heads or n_ff per layer), fused attn_qkv and
 * mixture-of-experts files are refused with FR_EUNSUPP.
 *
 * Encoders (bert, nomic-bert; hp.encoder): the same size keys, and
 *   norm_eps     {arch}.attention.layer_norm_epsilon      required
 *   pooling      {arch}.pooling_type                      default 0 (none)
 *   causal       {arch}.attention.causal                  must be false if present
 *   n_head_kv    must equal n_head
 *   nomic-bert:  rope.freq_base (default 10000), rope.dimension_count, NEOX
 * Tensors: token_embd, token_types (optional, any number of rows), position_embd
 * {n_embd, n_ctx_train} (bert only), token_embd_norm.{weight,bias}; per layer
 * attn_q/k/v (+bias) or fused attn_qkv (+bias), attn_output (+bias),
 * attn_output_norm.{weight,bias}, ffn_up (+bias), ffn_gate (nomic-bert),
 * ffn_down (+bias), layer_output_norm.{weight,bias}; optional rank head
 * cls (+bias) and cls.output (+bias, any number of rows).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/model_int.h"
#include "kernels/kernels.h"
#include "kernels/types.h"

/* Upper bounds that keep every size product far inside int64/size_t. */
#define MAX_DIM   (1 << 20)
#define MAX_LAYER 4096

typedef struct loader {
    fr_model *m;
    const char *path;
    char arch[32];
} loader;

/* ---- keys ---- */

static int key_u32(loader *ld, const char *suffix, bool required, uint32_t def, uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    int64_t i = fr_gguf_find_key(ld->m->gguf, key);
    if (i < 0) {
        if (required) return fr_errf(FR_EFORMAT, "%s: missing key '%s'", ld->path, key);
        *out = def;
        return 0;
    }
    if (fr_gguf_kv_type(ld->m->gguf, i) == FR_GGUF_ARRAY)
        return fr_errf(FR_EUNSUPP, "%s: key '%s': per-layer values are not supported",
                       ld->path, key);
    int rc = fr_gguf_get_u32(ld->m->gguf, key, out);
    if (rc < 0) return rc;
    return 0;
}

static int key_f32(loader *ld, const char *suffix, bool required, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    int rc = fr_gguf_get_f32(ld->m->gguf, key, out);
    if (rc == FR_ENOENT) {
        if (required) return fr_errf(FR_EFORMAT, "%s: missing key '%s'", ld->path, key);
        *out = def;
        return 0;
    }
    return rc;
}

static int key_bool(loader *ld, const char *suffix, bool def, bool *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    int rc = fr_gguf_get_bool(ld->m->gguf, key, out);
    if (rc == FR_ENOENT) {
        *out = def;
        return 0;
    }
    return rc;
}

static int key_str(loader *ld, const char *suffix, char *buf, size_t cap, bool *found) {
    char key[128];
    fr_gguf_str s;
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    *found = false;
    int rc = fr_gguf_get_str(ld->m->gguf, key, &s);
    if (rc == FR_ENOENT) return 0;
    if (rc < 0) return rc;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.s, n);
    buf[n] = 0;
    *found = true;
    return 0;
}

static int check_dim(loader *ld, const char *what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return fr_errf(FR_EFORMAT, "%s: %s = %lld is out of range [%lld, %lld]", ld->path,
                       what, (long long)v, (long long)lo, (long long)hi);
    return 0;
}

static int read_hparams(loader *ld) {
    fr_hparams *hp = &ld->m->hp;
    uint32_t u;
    int rc;

    snprintf(hp->arch, sizeof hp->arch, "%s", ld->arch);
    if ((rc = key_u32(ld, "context_length", true, 0, &u)) < 0) return rc;
    hp->n_ctx_train = (int32_t)(u > INT32_MAX ? INT32_MAX : u);
    if ((rc = key_u32(ld, "embedding_length", true, 0, &u)) < 0) return rc;
    if ((rc = check_dim(ld, "embedding_length", u, 1, MAX_DIM)) < 0) return rc;
    hp->n_embd = (int32_t)u;
    if ((rc = key_u32(ld, "block_count", true, 0, &u)) < 0) return rc;
    if ((rc = check_dim(ld, "block_count", u, 1, MAX_LAYER)) < 0) return rc;
    hp->n_layer = (int32_t)u;
    if ((rc = key_u32(ld, "feed_forward_length", true, 0, &u)) < 0) return rc;
    if ((rc = check_dim(ld, "feed_forward_length", u, 1, MAX_DIM)) < 0) return rc;
    hp->n_ff = (int32_t)u;
    if ((rc = key_u32(ld, "attention.head_count", true, 0, &u)) < 0) return rc;
    if ((rc = check_dim(ld, "attention.head_count", u, 1, hp->n_embd)) < 0) return rc;
    hp->n_head = (int32_t)u;
    if ((rc = key_u32(ld, "attention.head_count_kv", false, (uint32_t)hp->n_head, &u)) < 0)
        return rc;
    if ((rc = check_dim(ld, "attention.head_count_kv", u, 1, hp->n_head)) < 0) return rc;
    hp->n_head_kv = (int32_t)u;
    if (hp->n_head % hp->n_head_kv != 0)
        return fr_errf(FR_EFORMAT, "%s: head_count %d is not a multiple of head_count_kv %d",
                       ld->path, hp->n_head, hp->n_head_kv);

    uint32_t def_hd = (uint32_t)(hp->n_embd / hp->n_head);
    if ((rc = key_u32(ld, "attention.key_length", false, 0, &u)) < 0) return rc;
    if (u == 0) {
        if (hp->n_embd % hp->n_head != 0)
            return fr_errf(FR_EFORMAT, "%s: embedding_length %d is not a multiple of "
                           "head_count %d", ld->path, hp->n_embd, hp->n_head);
        u = def_hd;
    }
    if ((rc = check_dim(ld, "attention.key_length", u, 1, MAX_DIM)) < 0) return rc;
    hp->head_dim = (int32_t)u;
    if ((int64_t)hp->head_dim * hp->n_head > MAX_DIM)
        return fr_errf(FR_EFORMAT, "%s: head_count × key_length = %lld is too large", ld->path,
                       (long long)hp->head_dim * hp->n_head);
    if ((rc = key_u32(ld, "attention.value_length", false, (uint32_t)hp->head_dim, &u)) < 0)
        return rc;
    if (u != (uint32_t)hp->head_dim)
        return fr_errf(FR_EUNSUPP, "%s: value_length %u differs from key_length %d", ld->path,
                       u, hp->head_dim);
    if ((rc = key_u32(ld, "rope.dimension_count", false, (uint32_t)hp->head_dim, &u)) < 0)
        return rc;
    if (u == 0 || u > (uint32_t)hp->head_dim || u % 2 != 0)
        return fr_errf(FR_EFORMAT, "%s: rope.dimension_count %u must be even and in "
                       "[2, head_dim %d]", ld->path, u, hp->head_dim);
    hp->n_rot = (int32_t)u;

    if (hp->encoder) {
        if ((rc = key_f32(ld, "attention.layer_norm_epsilon", true, 0, &hp->norm_eps)) < 0)
            return rc;
        if (!(hp->norm_eps >= 0) || !isfinite(hp->norm_eps))
            return fr_errf(FR_EFORMAT, "%s: bad layer_norm_epsilon %g", ld->path,
                           (double)hp->norm_eps);
    } else {
        if ((rc = key_f32(ld, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps)) < 0)
            return rc;
        if (!(hp->rms_eps >= 0) || !isfinite(hp->rms_eps))
            return fr_errf(FR_EFORMAT, "%s: bad layer_norm_rms_epsilon %g", ld->path,
                           (double)hp->rms_eps);
    }
    if ((rc = key_f32(ld, "rope.freq_base", false, 10000.0f, &hp->rope_base)) < 0) return rc;
    if (!(hp->rope_base > 0) || !isfinite(hp->rope_base))
        return fr_errf(FR_EFORMAT, "%s: bad rope.freq_base %g", ld->path, (double)hp->rope_base);

    /* RoPE scaling: freq_scale = 1/factor for linear scaling. */
    float factor = 0;
    if ((rc = key_f32(ld, "rope.scaling.factor", false, 0.0f, &factor)) < 0) return rc;
    if (factor == 0 && (rc = key_f32(ld, "rope.scale_linear", false, 0.0f, &factor)) < 0)
        return rc;
    if (!(factor >= 0) || !isfinite(factor))
        return fr_errf(FR_EFORMAT, "%s: bad rope scaling factor %g", ld->path, (double)factor);
    char stype[32] = "linear";
    bool found;
    if ((rc = key_str(ld, "rope.scaling.type", stype, sizeof stype, &found)) < 0) return rc;
    bool trivial = factor == 0 || factor == 1;
    if (!strcmp(stype, "none")) {
        hp->rope_freq_scale = 1.0f;
    } else if (!strcmp(stype, "linear")) {
        hp->rope_freq_scale = factor == 0 ? 1.0f : 1.0f / factor;
    } else if (trivial) {
        hp->rope_freq_scale = 1.0f;
    } else {
        return fr_errf(FR_EUNSUPP, "%s: rope scaling type '%s' is not supported", ld->path,
                       stype);
    }
    hp->rope_type = strcmp(ld->arch, "qwen2") == 0 || strcmp(ld->arch, "nomic-bert") == 0
                        ? FR_ROPE_NEOX
                    : strcmp(ld->arch, "bert") == 0 ? FR_ROPE_NONE
                                                    : FR_ROPE_NORM;
    if (hp->encoder) {
        if (hp->n_head_kv != hp->n_head)
            return fr_errf(FR_EUNSUPP, "%s: encoder with head_count_kv %d != head_count %d",
                           ld->path, hp->n_head_kv, hp->n_head);
        bool causal;
        if ((rc = key_bool(ld, "attention.causal", false, &causal)) < 0) return rc;
        if (causal)
            return fr_errf(FR_EUNSUPP, "%s: %s.attention.causal = true: causal encoders are not "
                           "supported", ld->path, ld->arch);
        if ((rc = key_u32(ld, "pooling_type", false, 0, &u)) < 0) return rc;
        if (u > FR_POOLING_RANK)
            return fr_errf(FR_EUNSUPP, "%s: %s.pooling_type %u is not supported (0..4)",
                           ld->path, ld->arch, u);
        hp->pooling = (int)u;
        if (hp->n_ctx_train < 1)
            return fr_errf(FR_EFORMAT, "%s: context_length %d", ld->path, hp->n_ctx_train);
    }

    if ((rc = key_u32(ld, "expert_count", false, 0, &u)) < 0) return rc;
    if (u > 0)
        return fr_errf(FR_EUNSUPP, "%s: mixture-of-experts models (expert_count %u) are not "
                       "supported", ld->path, u);
    return 0;
}

/* ---- tensors ---- */

static int check_type(loader *ld, const fr_gguf_tensor *t) {
    const fr_type_info *ti = fr_type_get(t->type);
    if (!ti || !ti->computable || !fr_kernels_get(t->type))
        return fr_errf(FR_EUNSUPP, "%s: tensor '%s': type %s is not supported", ld->path,
                       t->name, fr_type_name(t->type));
    return 0;
}

static int bad_shape(loader *ld, const fr_gguf_tensor *t, int64_t want0, int64_t want1) {
    char got[96];
    int n = snprintf(got, sizeof got, "{");
    for (int d = 0; d < t->n_dims && n < (int)sizeof got; d++)
        n += snprintf(got + n, sizeof got - (size_t)n, "%s%lld", d ? ", " : "",
                      (long long)t->ne[d]);
    if (n < (int)sizeof got) snprintf(got + n, sizeof got - (size_t)n, "}");
    if (want1 > 0)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': shape %s, expected {%lld, %lld}", ld->path,
                       t->name, got, (long long)want0, (long long)want1);
    return fr_errf(FR_EFORMAT, "%s: tensor '%s': shape %s, expected {%lld}", ld->path, t->name,
                   got, (long long)want0);
}

/* A matrix {cols, rows}.  A missing optional one leaves w zeroed. */
static int find_weight(loader *ld, const char *name, int64_t cols, int64_t rows, bool required,
                       fr_weight *w) {
    memset(w, 0, sizeof *w);
    const fr_gguf_tensor *t = fr_gguf_find_tensor(ld->m->gguf, name);
    if (!t) {
        if (required) return fr_errf(FR_EFORMAT, "%s: missing tensor '%s'", ld->path, name);
        return 0;
    }
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return bad_shape(ld, t, cols, rows);
    int rc = check_type(ld, t);
    if (rc < 0) return rc;
    size_t rb;
    if (!fr_type_row_size(t->type, cols, &rb))
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': row of %lld is not a whole number of "
                       "%s blocks", ld->path, name, (long long)cols, fr_type_name(t->type));
    if (rb * (size_t)rows != t->nbytes)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': %zu bytes, expected %zu", ld->path, name,
                       t->nbytes, rb * (size_t)rows);
    w->data = t->data;
    w->type = t->type;
    w->cols = cols;
    w->rows = rows;
    w->row_bytes = rb;
    w->nbytes = t->nbytes;
    return 0;
}

/* A matrix {cols, any number of rows >= 1} (token types, classifier
 * outputs): a 1-D {cols} tensor is one row. */
static int find_rows(loader *ld, const char *name, int64_t cols, bool required, fr_weight *w) {
    memset(w, 0, sizeof *w);
    const fr_gguf_tensor *t = fr_gguf_find_tensor(ld->m->gguf, name);
    if (!t) {
        if (required) return fr_errf(FR_EFORMAT, "%s: missing tensor '%s'", ld->path, name);
        return 0;
    }
    int64_t rows = t->ne[1];
    if (t->n_dims > 2 || t->ne[0] != cols || rows < 1 || rows > MAX_DIM)
        return bad_shape(ld, t, cols, rows < 1 || rows > MAX_DIM ? 1 : rows);
    return find_weight(ld, name, cols, rows, true, w);
}

/* A 1-D F32 vector {n} (norm weights, biases, rope factors). */
static int find_vec(loader *ld, const char *name, int64_t n, bool required, const float **out) {
    *out = NULL;
    const fr_gguf_tensor *t = fr_gguf_find_tensor(ld->m->gguf, name);
    if (!t) {
        if (required) return fr_errf(FR_EFORMAT, "%s: missing tensor '%s'", ld->path, name);
        return 0;
    }
    if (t->n_dims != 1 || t->ne[0] != n) return bad_shape(ld, t, n, 0);
    if (t->type != FR_TYPE_F32)
        return fr_errf(FR_EUNSUPP, "%s: tensor '%s': type %s is not supported for a vector "
                       "(f32 expected)", ld->path, name, fr_type_name(t->type));
    if ((uintptr_t)t->data % sizeof(float) != 0)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': data is not 4-byte aligned", ld->path, name);
    *out = t->data;
    return 0;
}

static int find_tensors(loader *ld) {
    fr_model *m = ld->m;
    const fr_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, n_vocab = hp->n_vocab;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim;
    int64_t n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[64];
    int rc;

    if ((rc = find_weight(ld, "token_embd.weight", n_embd, n_vocab, true, &m->tok_embd)) < 0)
        return rc;
    if ((rc = find_vec(ld, "output_norm.weight", n_embd, true, &m->output_norm)) < 0) return rc;
    if ((rc = find_weight(ld, "output.weight", n_embd, n_vocab, false, &m->output)) < 0)
        return rc;
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->tied_output = true;
    }
    if ((rc = find_vec(ld, "output.bias", n_vocab, false, &m->output_bias)) < 0) return rc;
    if ((rc = find_vec(ld, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs)) < 0)
        return rc;

    for (int32_t il = 0; il < hp->n_layer; il++) {
        fr_layer *L = &m->layers[il];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, (int)il), name)
        if (!fr_gguf_find_tensor(m->gguf, NAME("attn_q.weight")) &&
            fr_gguf_find_tensor(m->gguf, NAME("attn_qkv.weight")))
            return fr_errf(FR_EUNSUPP, "%s: tensor '%s': fused QKV is not supported", ld->path,
                           name);
        if ((rc = find_vec(ld, NAME("attn_norm.weight"), n_embd, true, &L->attn_norm)) < 0 ||
            (rc = find_weight(ld, NAME("attn_q.weight"), n_embd, n_q, true, &L->wq)) < 0 ||
            (rc = find_weight(ld, NAME("attn_k.weight"), n_embd, n_kv, true, &L->wk)) < 0 ||
            (rc = find_weight(ld, NAME("attn_v.weight"), n_embd, n_kv, true, &L->wv)) < 0 ||
            (rc = find_weight(ld, NAME("attn_output.weight"), n_q, n_embd, true, &L->wo)) < 0 ||
            (rc = find_vec(ld, NAME("attn_q.bias"), n_q, false, &L->bq)) < 0 ||
            (rc = find_vec(ld, NAME("attn_k.bias"), n_kv, false, &L->bk)) < 0 ||
            (rc = find_vec(ld, NAME("attn_v.bias"), n_kv, false, &L->bv)) < 0 ||
            (rc = find_vec(ld, NAME("attn_output.bias"), n_embd, false, &L->bo)) < 0 ||
            (rc = find_vec(ld, NAME("ffn_norm.weight"), n_embd, true, &L->ffn_norm)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_gate.weight"), n_embd, n_ff, true, &L->w_gate)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_up.weight"), n_embd, n_ff, true, &L->w_up)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_down.weight"), n_ff, n_embd, true, &L->w_down)) < 0)
            return rc;
#undef NAME
    }
    return 0;
}

static int find_tensors_enc(loader *ld) {
    fr_model *m = ld->m;
    fr_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, n_vocab = hp->n_vocab;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_qkv = 3 * n_q;
    bool nomic = !strcmp(ld->arch, "nomic-bert");
    char name[64];
    int rc;

    if ((rc = find_weight(ld, "token_embd.weight", n_embd, n_vocab, true, &m->tok_embd)) < 0 ||
        (rc = find_rows(ld, "token_types.weight", n_embd, false, &m->tok_types)) < 0 ||
        (rc = find_weight(ld, "position_embd.weight", n_embd, hp->n_ctx_train, !nomic,
                          &m->pos_embd)) < 0 ||
        (rc = find_vec(ld, "token_embd_norm.weight", n_embd, true, &m->tok_norm)) < 0 ||
        (rc = find_vec(ld, "token_embd_norm.bias", n_embd, true, &m->tok_norm_b)) < 0 ||
        (rc = find_weight(ld, "cls.weight", n_embd, n_embd, false, &m->cls)) < 0 ||
        (rc = find_vec(ld, "cls.bias", n_embd, false, &m->cls_b)) < 0 ||
        (rc = find_rows(ld, "cls.output.weight", n_embd, false, &m->cls_out)) < 0)
        return rc;
    if (nomic && m->pos_embd.data)
        return fr_errf(FR_EUNSUPP, "%s: nomic-bert with position_embd.weight", ld->path);
    hp->n_cls_out = m->cls_out.data ? (int32_t)m->cls_out.rows : 1;
    if ((rc = find_vec(ld, "cls.output.bias", hp->n_cls_out, false, &m->cls_out_b)) < 0) return rc;
    if (hp->pooling == FR_POOLING_RANK && !m->cls.data && !m->cls_out.data)
        return fr_errf(FR_EFORMAT, "%s: rank pooling without a classifier head (cls.weight, "
                       "cls.output.weight)", ld->path);

    for (int32_t il = 0; il < hp->n_layer; il++) {
        fr_layer *L = &m->layers[il];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, (int)il), name)
        bool fused = !fr_gguf_find_tensor(m->gguf, NAME("attn_q.weight")) &&
                     fr_gguf_find_tensor(m->gguf, NAME("attn_qkv.weight"));
        if (fused) {
            if ((rc = find_weight(ld, NAME("attn_qkv.weight"), n_embd, n_qkv, true, &L->wqkv)) < 0 ||
                (rc = find_vec(ld, NAME("attn_qkv.bias"), n_qkv, false, &L->bqkv)) < 0)
                return rc;
        } else if ((rc = find_weight(ld, NAME("attn_q.weight"), n_embd, n_q, true, &L->wq)) < 0 ||
                   (rc = find_weight(ld, NAME("attn_k.weight"), n_embd, n_q, true, &L->wk)) < 0 ||
                   (rc = find_weight(ld, NAME("attn_v.weight"), n_embd, n_q, true, &L->wv)) < 0 ||
                   (rc = find_vec(ld, NAME("attn_q.bias"), n_q, false, &L->bq)) < 0 ||
                   (rc = find_vec(ld, NAME("attn_k.bias"), n_q, false, &L->bk)) < 0 ||
                   (rc = find_vec(ld, NAME("attn_v.bias"), n_q, false, &L->bv)) < 0) {
            return rc;
        }
        if ((rc = find_weight(ld, NAME("attn_output.weight"), n_q, n_embd, true, &L->wo)) < 0 ||
            (rc = find_vec(ld, NAME("attn_output.bias"), n_embd, false, &L->bo)) < 0 ||
            (rc = find_vec(ld, NAME("attn_output_norm.weight"), n_embd, true, &L->attn_out_norm)) < 0 ||
            (rc = find_vec(ld, NAME("attn_output_norm.bias"), n_embd, true, &L->attn_out_norm_b)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_up.weight"), n_embd, n_ff, true, &L->w_up)) < 0 ||
            (rc = find_vec(ld, NAME("ffn_up.bias"), n_ff, false, &L->b_up)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_gate.weight"), n_embd, n_ff, nomic, &L->w_gate)) < 0 ||
            (rc = find_weight(ld, NAME("ffn_down.weight"), n_ff, n_embd, true, &L->w_down)) < 0 ||
            (rc = find_vec(ld, NAME("ffn_down.bias"), n_embd, false, &L->b_down)) < 0 ||
            (rc = find_vec(ld, NAME("layer_output_norm.weight"), n_embd, true, &L->out_norm)) < 0 ||
            (rc = find_vec(ld, NAME("layer_output_norm.bias"), n_embd, true, &L->out_norm_b)) < 0)
            return rc;
        if (!nomic && L->w_gate.data)
            return fr_errf(FR_EUNSUPP, "%s: tensor '%s': a gated FFN in a bert file is not "
                           "supported", ld->path, NAME("ffn_gate.weight"));
#undef NAME
    }
    return 0;
}

/* The vocabulary size: the length of tokenizer.ggml.tokens. */
static int read_n_vocab(loader *ld) {
    int et;
    uint64_t count;
    const void *data;
    int rc = fr_gguf_get_arr(ld->m->gguf, "tokenizer.ggml.tokens", &et, &count, &data);
    if (rc == FR_ENOENT)
        return fr_errf(FR_EFORMAT, "%s: missing key 'tokenizer.ggml.tokens'", ld->path);
    if (rc < 0) return rc;
    if (et != FR_GGUF_STRING || count == 0 || count > INT32_MAX)
        return fr_errf(FR_EFORMAT, "%s: key 'tokenizer.ggml.tokens': bad array (type %d, %llu "
                       "items)", ld->path, et, (unsigned long long)count);
    ld->m->hp.n_vocab = (int32_t)count;
    return 0;
}

int fr_model_open(const char *path, fr_model **out) {
    *out = NULL;
    int64_t heap0 = fr_mem_thread_net();   /* everything below allocates on this thread */
    fr_model *m = fr_calloc(1, sizeof *m);
    if (!m) return FR_ENOMEM;
    loader ld = {.m = m, .path = path};
    int rc = fr_gguf_open(path, &m->gguf);
    if (rc < 0) goto fail;

    fr_gguf_str arch;
    rc = fr_gguf_get_str(m->gguf, "general.architecture", &arch);
    if (rc == FR_ENOENT) rc = fr_errf(FR_EFORMAT, "%s: missing key 'general.architecture'", path);
    if (rc < 0) goto fail;
    static const char *const archs[] = {"llama", "qwen2", "bert", "nomic-bert"};
    size_t ai = 0;
    while (ai < 4 && !(arch.len == strlen(archs[ai]) && !memcmp(arch.s, archs[ai], arch.len))) ai++;
    if (ai == 4) {
        rc = fr_errf(FR_EUNSUPP, "%s: architecture '%.*s' is not supported (llama, qwen2, bert, "
                     "nomic-bert)", path, (int)(arch.len > 64 ? 64 : arch.len), arch.s);
        goto fail;
    }
    memcpy(ld.arch, arch.s, arch.len);
    ld.arch[arch.len] = 0;
    m->hp.encoder = ai >= 2;

    if ((rc = read_hparams(&ld)) < 0) goto fail;
    if ((rc = read_n_vocab(&ld)) < 0) goto fail;
    m->layers = fr_calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) { rc = FR_ENOMEM; goto fail; }
    if ((rc = m->hp.encoder ? find_tensors_enc(&ld) : find_tensors(&ld)) < 0) goto fail;
    if ((rc = fr_vocab_load(m->gguf, &m->vocab)) < 0) goto fail;
    if (fr_vocab_n_tokens(m->vocab) != m->hp.n_vocab) {
        rc = fr_errf(FR_EFORMAT, "%s: tokenizer has %d tokens, token_embd.weight has %d rows",
                     path, fr_vocab_n_tokens(m->vocab), m->hp.n_vocab);
        goto fail;
    }
    m->heap_bytes = (size_t)(fr_mem_thread_net() - heap0);
    *out = m;
    return 0;
fail:
    fr_model_close(m);
    return rc;
}

void fr_model_close(fr_model *m) {
    if (!m) return;
    if (m->vocab) fr_vocab_destroy(m->vocab);
    fr_free(m->layers);
    if (m->gguf) fr_gguf_close(m->gguf);
    fr_free(m);
}

const fr_hparams *fr_model_hparams(const fr_model *m) { return &m->hp; }
const fr_vocab *fr_model_vocab(const fr_model *m) { return m->vocab; }
const fr_gguf *fr_model_gguf(const fr_model *m) { return m->gguf; }
size_t fr_model_heap_bytes(const fr_model *m) { return m->heap_bytes; }

size_t fr_model_weight_bytes(const fr_model *m) {
    size_t total = m->tok_embd.row_bytes + m->output.nbytes + m->cls.nbytes + m->cls_out.nbytes;
    for (int32_t il = 0; il < m->hp.n_layer; il++) {
        const fr_layer *L = &m->layers[il];
        total += L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wqkv.nbytes + L->wo.nbytes +
                 L->w_gate.nbytes + L->w_up.nbytes + L->w_down.nbytes;
    }
    return total;
}

bool fr_model_is_encoder(const fr_model *m) { return m->hp.encoder; }
int32_t fr_model_n_embd(const fr_model *m) { return m->hp.n_embd; }
int32_t fr_model_n_ctx_train(const fr_model *m) { return m->hp.n_ctx_train; }
int fr_model_pooling(const fr_model *m) { return m->hp.pooling; }
