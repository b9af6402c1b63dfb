/*
 * cmd_mkmodel.c — `frugal mkmodel`: write a random-weight model of a real shape,
 * for demos, tests and benchmarks (the weights are noise; the arithmetic,
 * the sizes and the memory traffic are those of the real model).
 *
 * Shapes are the published hyperparameters of TinyLlama 1.1B, Qwen2 0.5B and
 * Llama 3.2 1B, plus a tiny one.  The architecture decides the structure:
 * llama (NORM RoPE, untied output unless the shape ties it) or qwen2 (Q/K/V
 * biases, NEOX RoPE, tied output).  The tokenizer is copied from --vocab
 * FILE, or generated: an SPM vocabulary of the shape's size with byte
 * fallback tokens and letter pieces, enough to encode and decode any text.
 *
 * Encoders: --arch bert (all-MiniLM-L6-v2's shape "minilm-l6", or "tiny",
 * tiny-bert's) and --arch nomic-bert (nomic-embed-text-v1.5's shape
 * "nomic-embed", or "tiny": fused QKV, RoPE, gated SiLU FFN).  --pooling
 * mean (default) | cls | last | none | rank; rank adds the classifier head
 * (cls, cls.output with one output) of a cross-encoder reranker.  The
 * vocabulary is copied from --vocab FILE (a WordPiece one, e.g. bert-bge),
 * or generated: WordPiece pieces of the shape's size ([PAD] [UNK] [CLS]
 * [SEP] [MASK], characters, letter strings with and without "▁").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "engine/gguf.h"
#include "kernels/kernels.h"
#include "kernels/types.h"

typedef struct shape {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rms_eps, rope_base;
    bool tied;          /* no output.weight even for llama */
    bool llama3_rope;   /* write rope_freqs (Llama 3.1 scaling, factor 32) */
} shape;

static const shape shapes[] = {
    {"tiny", 256, 2, 4, 2, 768, 4096, 2048, 1e-5f, 10000.0f, false, false},
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, 1e-5f, 10000.0f, false, false},
    {"qwen2-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, 1e-6f, 1000000.0f, true, false},
    {"llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 1e-5f, 500000.0f, true, true},
};

/* ---- random numbers: splitmix64, uniform with the variance of N(0, sd) ---- */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(float sd) { /* U(-a, a) with a = sd·√3 has std sd */
    float u = (float)(rng_next() >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * sd * 1.7320508f;
}

typedef struct builder {
    fr_gguf_writer *w;
    void **bufs;
    size_t n_bufs, cap_bufs;
    int wtype;
    float *row;         /* scratch: one row of f32 */
} builder;

static int keep(builder *b, void *p) {
    if (b->n_bufs == b->cap_bufs) {
        size_t nc = b->cap_bufs ? b->cap_bufs * 2 : 64;
        void **nb = fr_realloc(b->bufs, nc * sizeof *nb);
        if (!nb) return FR_ENOMEM;
        b->bufs = nb;
        b->cap_bufs = nc;
    }
    b->bufs[b->n_bufs++] = p;
    return 0;
}

/* Add a tensor of ne0 × ne1 random values (sd), or `fill` when sd == 0,
 * stored as type. */
static int add_tensor(builder *b, const char *name, int type, int64_t ne0, int64_t ne1, float sd,
                      float fill) {
    size_t row_bytes, total;
    if (!fr_type_row_size(type, ne0, &row_bytes) || !fr_mul_ok(row_bytes, (size_t)ne1, &total))
        return fr_errf(FR_EINVAL, "tensor %s: row of %lld does not fit type %s", name,
                       (long long)ne0, fr_type_name(type));
    const fr_type_ops *ops = fr_kernels_get(type);
    if (!ops || !ops->quantize) return fr_errf(FR_EUNSUPP, "cannot write type %s", fr_type_name(type));
    unsigned char *data = fr_malloc(total ? total : 1);
    if (!data || keep(b, data)) { fr_free(data); return FR_ENOMEM; }
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t i = 0; i < ne0; i++) b->row[i] = sd > 0 ? rng_uniform(sd) : fill;
        ops->quantize(b->row, data + (size_t)r * row_bytes, ne0);
    }
    int64_t ne[2] = {ne0, ne1};
    return fr_gguf_writer_add_tensor(b->w, name, type, ne1 > 1 ? 2 : 1, ne, data);
}

/* A generated vocabulary being filled: tokens, their types and (SPM) scores. */
typedef struct vgen {
    char **toks;
    float *scores;              /* NULL: no scores (WordPiece) */
    int32_t *types;
    int n, cap;
} vgen;

/* Append a token (nothing once cap is reached); false on no memory.  A
 * normal token (type 1) scores -index, so earlier ones win SPM merges. */
static bool vpush(vgen *v, const char *str, int32_t type) {
    if (v->n >= v->cap) return true;
    if (!(v->toks[v->n] = fr_strdup(str))) return false;
    v->types[v->n] = type;
    if (v->scores) v->scores[v->n] = type == 1 ? -(float)v->n : 0.0f;
    v->n++;
    return true;
}

/* The words of both generated vocabularies: printable ASCII with and
 * without "▁", then letter strings of length 2, 3, ... in base-26 order,
 * with and without "▁", up to cap. */
static bool vpush_words(vgen *v) {
    char buf[64];
    for (int c = 0x21; c < 0x7f; c++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%c", c);
        if (!vpush(v, buf, 1)) return false;
        snprintf(buf, sizeof buf, "%c", c);
        if (!vpush(v, buf, 1)) return false;
    }
    for (int len = 2; v->n < v->cap && len < 8; len++) {
        long count = 1;
        for (int i = 0; i < len; i++) count *= 26;
        for (long k = 0; k < count && v->n < v->cap; k++) {
            char str[16];
            long x = k;
            for (int i = len - 1; i >= 0; i--) { str[i] = (char)('a' + x % 26); x /= 26; }
            str[len] = 0;
            snprintf(buf, sizeof buf, "\xe2\x96\x81%s", str);
            if (!vpush(v, buf, 1) || !vpush(v, str, 1)) return false;
        }
    }
    return true;
}

static void vgen_free(vgen *v) {
    for (int i = 0; v->toks && i < v->cap; i++) fr_free(v->toks[i]);
    fr_free(v->toks);
    fr_free(v->scores);
    fr_free(v->types);
}

/* The generated SPM vocabulary: <unk> <s> </s>, 256 byte tokens, "▁",
 * then the words (vpush_words). */
static int gen_vocab(fr_gguf_writer *w, int n_vocab) {
    vgen v = {fr_calloc((size_t)n_vocab, sizeof(char *)), fr_calloc((size_t)n_vocab, sizeof(float)),
              fr_calloc((size_t)n_vocab, sizeof(int32_t)), 0, n_vocab};
    int rc = FR_ENOMEM;
    if (!v.toks || !v.scores || !v.types) goto out;
    if (!vpush(&v, "<unk>", 2) || !vpush(&v, "<s>", 3) || !vpush(&v, "</s>", 3)) goto out;
    for (int i = 0; i < 256; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "<0x%02X>", i);
        if (!vpush(&v, buf, 6)) goto out;
    }
    if (!vpush(&v, "\xe2\x96\x81", 1) || !vpush_words(&v)) goto out;
    if (v.n < n_vocab) { rc = fr_errf(FR_EINVAL, "vocabulary of %d is too large to generate", n_vocab); goto out; }
    if ((rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default")) ||
        (rc = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.toks, NULL, (uint64_t)v.n)) ||
        (rc = fr_gguf_writer_set_arr(w, "tokenizer.ggml.scores", FR_GGUF_F32, v.scores, (uint64_t)v.n)) ||
        (rc = fr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FR_GGUF_I32, v.types, (uint64_t)v.n)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
        (rc = fr_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) ||
        (rc = fr_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)))
        goto out;
    rc = 0;
out:
    vgen_free(&v);
    return rc;
}

/* The generated WordPiece vocabulary (model "bert"): [PAD] [UNK] [CLS]
 * [SEP] [MASK], then the words (vpush_words). */
static int gen_vocab_wpm(fr_gguf_writer *w, int n_vocab) {
    vgen v = {fr_calloc((size_t)n_vocab, sizeof(char *)), NULL, fr_calloc((size_t)n_vocab, sizeof(int32_t)), 0,
              n_vocab};
    int rc = FR_ENOMEM;
    if (!v.toks || !v.types) goto out;
    static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (!vpush(&v, special[i], 3)) goto out;
    if (!vpush_words(&v)) goto out;
    if (v.n < n_vocab) { rc = fr_errf(FR_EINVAL, "vocabulary of %d is too large to generate", n_vocab); goto out; }
    if ((rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert")) ||
        (rc = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.toks, NULL, (uint64_t)v.n)) ||
        (rc = fr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FR_GGUF_I32, v.types, (uint64_t)v.n)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3)) ||
        (rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", 4)))
        goto out;
    rc = 0;
out:
    vgen_free(&v);
    return rc;
}

/* Copy the tokenizer of FILE; returns its vocabulary size in *n_vocab. */
static int copy_vocab(fr_gguf_writer *w, const char *path, int *n_vocab) {
    fr_gguf *g = NULL;
    int rc = fr_gguf_open(path, &g);
    if (rc) return rc;
    int et;
    uint64_t count;
    const void *data;
    if ((rc = fr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data))) {
        if (rc == FR_ENOENT) rc = fr_errf(FR_EFORMAT, "%s: no tokenizer.ggml.tokens", path);
    } else if (count == 0 || count > (1u << 24)) {
        rc = fr_errf(FR_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)count);
    } else {
        *n_vocab = (int)count;
        rc = fr_gguf_writer_copy_kv(w, g, "tokenizer.");
    }
    fr_gguf_close(g);
    return rc;
}

/* Llama 3.1 frequency factors (GGUF.md §4), factor 32 as Llama 3.2 uses. */
static int add_rope_freqs(builder *b, int n_rot, float base) {
    int n = n_rot / 2;
    float *ff = fr_malloc(sizeof(float) * (size_t)n);
    if (!ff || keep(b, ff)) { fr_free(ff); return FR_ENOMEM; }
    const double factor = 32, low = 1, high = 4, old_ctx = 8192;
    for (int k = 0; k < n; k++) {
        double f = pow(base, -2.0 * k / n_rot), lambda = 2 * M_PI / f;
        if (lambda < old_ctx / high) ff[k] = 1;
        else if (lambda > old_ctx / low) ff[k] = (float)factor;
        else {
            double smooth = (old_ctx / lambda - low) / (high - low);
            ff[k] = (float)(1 / ((1 - smooth) / factor + smooth));
        }
    }
    int64_t ne[1] = {n};
    return fr_gguf_writer_add_tensor(b->w, "rope_freqs.weight", FR_TYPE_F32, 1, ne, ff);
}

static int file_type_of(int t) {
    switch (t) {
    case FR_TYPE_F32: return 0;
    case FR_TYPE_F16: return 1;
    case FR_TYPE_Q4_0: return 2;
    case FR_TYPE_Q8_0: return 7;
    default: return 0;
    }
}

/* The general.* keys of a generated model. */
static int write_general(fr_gguf_writer *w, const char *arch, const char *name, int wtype) {
    int rc;
    if ((rc = fr_gguf_writer_set_str(w, "general.architecture", arch)) ||
        (rc = fr_gguf_writer_set_str(w, "general.name", name)) ||
        (rc = fr_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type_of(wtype))) ||
        (rc = fr_gguf_writer_set_u32(w, "general.quantization_version", 2)))
        return rc;
    return 0;
}

/* ---- encoders ---- */

typedef struct enc_shape {
    const char *arch, *name;
    int n_embd, n_layer, n_head, n_ff, n_vocab, n_ctx;
    float eps, rope_base;
} enc_shape;

static const enc_shape enc_shapes[] = {
    {"bert", "tiny", 256, 2, 4, 1024, 30522, 512, 1e-12f, 0},
    {"bert", "minilm-l6", 384, 6, 12, 1536, 30522, 512, 1e-12f, 0},
    {"nomic-bert", "tiny", 256, 2, 4, 768, 30522, 2048, 1e-12f, 1000.0f},
    {"nomic-bert", "nomic-embed", 768, 12, 12, 3072, 30522, 2048, 1e-12f, 1000.0f},
};

static const char *const pooling_names[] = {"none", "mean", "cls", "last", "rank"};

static int build_encoder(const enc_shape *s, int wtype, int pooling, const char *vocab,
                         uint64_t seed, const char *out) {
    builder b = {0};
    b.wtype = wtype;
    rng_state = seed;
    int rc = fr_gguf_writer_create(&b.w);
    if (rc) return rc;
    const char *arch = s->arch;
    bool nomic = !strcmp(arch, "nomic-bert");
    int n_vocab = s->n_vocab, E = s->n_embd, F = s->n_ff;
    char key[128], name[128];
    b.row = fr_malloc(sizeof(float) * (size_t)(3 * E > F ? 3 * E : F));
    if (!b.row) { rc = FR_ENOMEM; goto done; }
    if (vocab) rc = copy_vocab(b.w, vocab, &n_vocab);
    else rc = gen_vocab_wpm(b.w, n_vocab);
    if (rc) goto done;

    snprintf(name, sizeof name, "frugal random %s %s %s%s", arch, s->name, fr_type_name(wtype),
             pooling == 4 ? " reranker" : "");
#define SETU(k, v) do { snprintf(key, sizeof key, "%s.%s", arch, k); if ((rc = fr_gguf_writer_set_u32(b.w, key, (uint32_t)(v)))) goto done; } while (0)
#define SETF(k, v) do { snprintf(key, sizeof key, "%s.%s", arch, k); if ((rc = fr_gguf_writer_set_f32(b.w, key, (v)))) goto done; } while (0)
    if ((rc = write_general(b.w, arch, name, wtype))) goto done;
    SETU("context_length", s->n_ctx);
    SETU("embedding_length", E);
    SETU("block_count", s->n_layer);
    SETU("feed_forward_length", F);
    SETU("attention.head_count", s->n_head);
    SETU("pooling_type", pooling);
    SETU("vocab_size", n_vocab);
    SETF("attention.layer_norm_epsilon", s->eps);
    if (nomic) SETF("rope.freq_base", s->rope_base);
    snprintf(key, sizeof key, "%s.attention.causal", arch);
    if ((rc = fr_gguf_writer_set_bool(b.w, key, false))) goto done;
#undef SETU
#undef SETF

    const float sd = 0.02f;
    if ((rc = add_tensor(&b, "token_embd.weight", wtype, E, n_vocab, sd, 0)) ||
        (rc = add_tensor(&b, "token_types.weight", FR_TYPE_F32, E, 2, sd, 0)) ||
        (!nomic && (rc = add_tensor(&b, "position_embd.weight", FR_TYPE_F32, E, s->n_ctx, sd, 0))) ||
        (rc = add_tensor(&b, "token_embd_norm.weight", FR_TYPE_F32, E, 1, 0, 1.0f)) ||
        (rc = add_tensor(&b, "token_embd_norm.bias", FR_TYPE_F32, E, 1, sd, 0)))
        goto done;
    for (int l = 0; l < s->n_layer; l++) {
        struct { const char *t; int cols, rows; int kind; } parts[] = {
            /* kind: 0 matrix, 1 bias (random), 2 norm weight (ones); bert only 3, nomic only 4 */
            {"attn_q.weight", E, E, 3}, {"attn_q.bias", E, 1, 3 + 10},
            {"attn_k.weight", E, E, 3}, {"attn_k.bias", E, 1, 3 + 10},
            {"attn_v.weight", E, E, 3}, {"attn_v.bias", E, 1, 3 + 10},
            {"attn_qkv.weight", E, 3 * E, 4},
            {"attn_output.weight", E, E, 0}, {"attn_output.bias", E, 1, 3 + 10},
            {"attn_output_norm.weight", E, 1, 2}, {"attn_output_norm.bias", E, 1, 1},
            {"ffn_up.weight", E, F, 0}, {"ffn_up.bias", F, 1, 3 + 10},
            {"ffn_gate.weight", E, F, 4},
            {"ffn_down.weight", F, E, 0}, {"ffn_down.bias", E, 1, 3 + 10},
            {"layer_output_norm.weight", E, 1, 2}, {"layer_output_norm.bias", E, 1, 1},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            int kind = parts[i].kind;
            if ((kind % 10 == 3 && nomic) || (kind % 10 == 4 && !nomic)) continue;
            snprintf(name, sizeof name, "blk.%d.%s", l, parts[i].t);
            if (kind == 2) rc = add_tensor(&b, name, FR_TYPE_F32, parts[i].cols, 1, 0, 1.0f);
            else if (kind == 1 || kind == 13) rc = add_tensor(&b, name, FR_TYPE_F32, parts[i].cols, 1, sd, 0);
            else rc = add_tensor(&b, name, wtype, parts[i].cols, parts[i].rows, sd, 0);
            if (rc) goto done;
        }
    }
    if (pooling == 4 &&
        ((rc = add_tensor(&b, "cls.weight", wtype, E, E, sd, 0)) ||
         (rc = add_tensor(&b, "cls.bias", FR_TYPE_F32, E, 1, sd, 0)) ||
         (rc = add_tensor(&b, "cls.output.weight", FR_TYPE_F32, E, 1, 0.2f, 0)) ||
         (rc = add_tensor(&b, "cls.output.bias", FR_TYPE_F32, 1, 1, sd, 0))))
        goto done;
    rc = fr_gguf_writer_save(b.w, out);
done:
    for (size_t i = 0; i < b.n_bufs; i++) fr_free(b.bufs[i]);
    fr_free(b.bufs);
    fr_free(b.row);
    fr_gguf_writer_destroy(b.w);
    return rc;
}

static int build(const char *arch, const shape *s, int wtype, const char *vocab, uint64_t seed,
                 const char *out) {
    builder b = {0};
    b.wtype = wtype;
    rng_state = seed;
    int rc = fr_gguf_writer_create(&b.w);
    if (rc) return rc;
    bool qwen = !strcmp(arch, "qwen2");
    int hd = s->n_embd / s->n_head, n_vocab = s->n_vocab;
    int max_row = s->n_ff > s->n_embd ? s->n_ff : s->n_embd;
    char key[128], name[128];
    b.row = fr_malloc(sizeof(float) * (size_t)max_row);
    if (!b.row) { rc = FR_ENOMEM; goto done; }

    if (vocab) rc = copy_vocab(b.w, vocab, &n_vocab);
    else rc = gen_vocab(b.w, n_vocab);
    if (rc) goto done;

    snprintf(name, sizeof name, "frugal random %s %s %s", arch, s->name, fr_type_name(wtype));
#define SETU(k, v) do { snprintf(key, sizeof key, "%s.%s", arch, k); if ((rc = fr_gguf_writer_set_u32(b.w, key, (uint32_t)(v)))) goto done; } while (0)
#define SETF(k, v) do { snprintf(key, sizeof key, "%s.%s", arch, k); if ((rc = fr_gguf_writer_set_f32(b.w, key, (v)))) goto done; } while (0)
    if ((rc = write_general(b.w, arch, name, wtype))) goto done;
    SETU("context_length", s->n_ctx);
    SETU("embedding_length", s->n_embd);
    SETU("block_count", s->n_layer);
    SETU("feed_forward_length", s->n_ff);
    SETU("attention.head_count", s->n_head);
    SETU("attention.head_count_kv", s->n_head_kv);
    SETU("rope.dimension_count", hd);
    SETU("vocab_size", n_vocab);
    SETF("attention.layer_norm_rms_epsilon", s->rms_eps);
    SETF("rope.freq_base", s->rope_base);
#undef SETU
#undef SETF

    const float sd = 0.02f;
    int n_q = s->n_head * hd, n_kv = s->n_head_kv * hd;
    if ((rc = add_tensor(&b, "token_embd.weight", wtype, s->n_embd, n_vocab, sd, 0))) goto done;
    for (int l = 0; l < s->n_layer; l++) {
        struct { const char *t; int rows, cols; bool mat; } parts[] = {
            {"attn_norm.weight", s->n_embd, 1, false},
            {"attn_q.weight", s->n_embd, n_q, true},
            {"attn_k.weight", s->n_embd, n_kv, true},
            {"attn_v.weight", s->n_embd, n_kv, true},
            {"attn_q.bias", n_q, 1, false},
            {"attn_k.bias", n_kv, 1, false},
            {"attn_v.bias", n_kv, 1, false},
            {"attn_output.weight", n_q, s->n_embd, true},
            {"ffn_norm.weight", s->n_embd, 1, false},
            {"ffn_gate.weight", s->n_embd, s->n_ff, true},
            {"ffn_up.weight", s->n_embd, s->n_ff, true},
            {"ffn_down.weight", s->n_ff, s->n_embd, true},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            bool bias = strstr(parts[i].t, ".bias") != NULL;
            if (bias && !qwen) continue;
            snprintf(name, sizeof name, "blk.%d.%s", l, parts[i].t);
            if (parts[i].mat) rc = add_tensor(&b, name, wtype, parts[i].rows, parts[i].cols, sd, 0);
            else if (bias) rc = add_tensor(&b, name, FR_TYPE_F32, parts[i].rows, 1, sd, 0);
            else rc = add_tensor(&b, name, FR_TYPE_F32, parts[i].rows, 1, 0, 1.0f);
            if (rc) goto done;
        }
    }
    if ((rc = add_tensor(&b, "output_norm.weight", FR_TYPE_F32, s->n_embd, 1, 0, 1.0f))) goto done;
    if (!qwen && !s->tied && (rc = add_tensor(&b, "output.weight", wtype, s->n_embd, n_vocab, sd, 0))) goto done;
    if (s->llama3_rope && !qwen && (rc = add_rope_freqs(&b, hd, s->rope_base))) goto done;
    rc = fr_gguf_writer_save(b.w, out);
done:
    for (size_t i = 0; i < b.n_bufs; i++) fr_free(b.bufs[i]);
    fr_free(b.bufs);
    fr_free(b.row);
    fr_gguf_writer_destroy(b.w);
    return rc;
}

int fr_cli_mkmodel(int argc, char **argv) {
    const char *arch = "llama", *shape_name = "tiny", *type_name = "q8_0", *vocab = NULL, *out = NULL;
    const char *pooling_name = NULL;
    long seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--arch") && v) { arch = v; i++; }
        else if (!strcmp(a, "--shape") && v) { shape_name = v; i++; }
        else if (!strcmp(a, "--type") && v) { type_name = v; i++; }
        else if (!strcmp(a, "--vocab") && v) { vocab = v; i++; }
        else if (!strcmp(a, "--pooling") && v) { pooling_name = v; i++; }
        else if (!strcmp(a, "--seed")) { if (!fr_cli_int(a, v, 0, 0x7fffffffffffffffL, &seed)) return 2; i++; }
        else if (a[0] == '-') return fr_cli_usage("mkmodel: unknown option or missing value '%s'", a);
        else if (!out) out = a;
        else return fr_cli_usage("mkmodel: one output file only (got '%s' too)", a);
    }
    if (!out) return fr_cli_usage("mkmodel: output file required");
    int t = fr_type_from_name(type_name);
    if (t != FR_TYPE_F32 && t != FR_TYPE_F16 && t != FR_TYPE_Q8_0 && t != FR_TYPE_Q4_0)
        return fr_cli_usage("mkmodel: --type must be f32, f16, q8_0 or q4_0 (got '%s')", type_name);
    if (!strcmp(arch, "bert") || !strcmp(arch, "nomic-bert")) {
        const enc_shape *es = NULL;
        for (size_t i = 0; i < sizeof enc_shapes / sizeof enc_shapes[0]; i++)
            if (!strcmp(enc_shapes[i].arch, arch) && !strcmp(enc_shapes[i].name, shape_name))
                es = &enc_shapes[i];
        if (!es)
            return fr_cli_usage("mkmodel: --shape for %s must be %s (got '%s')", arch,
                                strcmp(arch, "bert") ? "tiny or nomic-embed" : "tiny or minilm-l6",
                                shape_name);
        int pooling = 1;
        if (pooling_name) {
            pooling = -1;
            for (int i = 0; i < 5; i++)
                if (!strcmp(pooling_names[i], pooling_name)) pooling = i;
            if (pooling < 0)
                return fr_cli_usage("mkmodel: --pooling must be none, mean, cls, last or rank "
                                    "(got '%s')", pooling_name);
        }
        int rc = build_encoder(es, t, pooling, vocab, (uint64_t)seed, out);
        if (rc) {
            remove(out);
            return fr_cli_fail(rc, out);
        }
        return 0;
    }
    if (pooling_name) return fr_cli_usage("mkmodel: --pooling is for encoders (bert, nomic-bert)");
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2"))
        return fr_cli_usage("mkmodel: --arch must be llama, qwen2, bert or nomic-bert (got '%s')", arch);
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, shape_name)) s = &shapes[i];
    if (!s) return fr_cli_usage("mkmodel: --shape must be tiny, tinyllama-1.1b, qwen2-0.5b or llama-3.2-1b (got '%s')", shape_name);
    int rc = build(arch, s, t, vocab, (uint64_t)seed, out);
    if (rc) {
        remove(out);
        return fr_cli_fail(rc, out);
    }
    return 0;
}
