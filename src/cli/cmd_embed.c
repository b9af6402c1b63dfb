/*
 * cmd_embed.c — `frugal embed` and `frugal rerank` on an encoder (bert,
 * nomic-bert) model.
 *
 *   frugal embed -m FILE [-t N] [--pooling P] [--no-normalize] TEXT...
 *       one JSON array per text and line: the pooled vector, L2-normalised
 *       unless --no-normalize (pooling none: one line per token).
 *   frugal rerank -m FILE --query Q [-t N] DOC...
 *       "index score" per document, best first: the classifier head's raw
 *       score of [CLS] query [SEP] document (a reranker: pooling rank).
 *
 * All texts go through the encoder in one call (fr_enc_encode batches
 * them, in steps of at most STEP_TOKENS tokens).  An input longer than the
 * model's context is truncated, with a note on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "frugal/engine.h"
#include "kernels/kernels.h"

#define STEP_TOKENS 4096   /* most tokens in one forward step */

typedef struct enc_opts {
    const char *model, *query;
    long threads;
    int pooling;
    bool normalize;
    const char **texts;
    int n_texts;
} enc_opts;

static int parse_pooling(const char *s) {
    static const char *const names[] = {"none", "mean", "cls", "last", "rank"};
    for (int i = 0; i < 5; i++)
        if (s && !strcmp(s, names[i])) return i;
    return -2;
}

static int parse(const char *cmd, int argc, char **argv, enc_opts *o, bool rerank) {
    o->threads = fr_physical_cores();
    o->pooling = FR_POOLING_MODEL;
    o->normalize = true;
    o->texts = fr_calloc((size_t)argc, sizeof *o->texts);
    if (!o->texts) return fr_cli_fail(FR_ENOMEM, cmd);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) return fr_cli_usage("%s: %s needs a file", cmd, a);
            o->model = v;
            i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!fr_cli_int(a, v, 1, 512, &o->threads)) return 2;
            i++;
        } else if (rerank && (!strcmp(a, "-q") || !strcmp(a, "--query"))) {
            if (!v) return fr_cli_usage("%s: %s needs text", cmd, a);
            o->query = v;
            i++;
        } else if (!rerank && !strcmp(a, "--pooling")) {
            if ((o->pooling = parse_pooling(v)) == -2)
                return fr_cli_usage("%s: --pooling must be none, mean, cls, last or rank", cmd);
            i++;
        } else if (!rerank && !strcmp(a, "--no-normalize")) {
            o->normalize = false;
        } else if (!strcmp(a, "--ref")) {
            fr_kernels_force_ref(true);
        } else if (!strcmp(a, "--")) {
            while (++i < argc) o->texts[o->n_texts++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            return fr_cli_usage("%s: unknown option or missing value '%s'", cmd, a);
        } else {
            o->texts[o->n_texts++] = a;
        }
    }
    if (!o->model) return fr_cli_usage("%s: -m FILE is required", cmd);
    if (rerank && !o->query) return fr_cli_usage("%s: --query Q is required", cmd);
    if (o->n_texts == 0) return fr_cli_usage("%s: give at least one %s", cmd, rerank ? "DOC" : "TEXT");
    return 0;
}

/* Tokenize every input (pairs with the query for rerank), build the batch. */
static int make_inputs(const fr_model *m, const enc_opts *o, bool rerank, fr_enc_seq *seqs,
                       int32_t *total, int32_t *longest) {
    *total = *longest = 0;
    for (int i = 0; i < o->n_texts; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        bool cut = false;
        const char *t = o->texts[i];
        int rc = rerank ? fr_enc_rerank_tokens(m, o->query, strlen(o->query), t, strlen(t), 0,
                                               &ids, &n, &cut)
                        : fr_enc_tokenize(m, t, strlen(t), 0, &ids, &n, &cut);
        if (rc) return rc;
        if (cut)
            fprintf(stderr, "frugal: input %d truncated to %zu tokens (the model's context)\n", i, n);
        seqs[i] = (fr_enc_seq){ids, (int32_t)n};
        *total += (int32_t)n;
        if ((int32_t)n > *longest) *longest = (int32_t)n;
    }
    return 0;
}

typedef struct scored {
    int index;
    float score;
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : x->index - y->index;
}

static int run(const char *cmd, int argc, char **argv, bool rerank) {
    enc_opts o = {0};
    int rc = parse(cmd, argc, argv, &o, rerank);
    if (rc) {
        fr_free(o.texts);
        return rc;
    }
    fr_model *m = NULL;
    fr_pool *pool = NULL;
    fr_enc *e = NULL;
    fr_enc_seq *seqs = NULL;
    scored *sc = NULL;
    int code = 1;
    const char *stage = o.model;
    if ((rc = fr_model_open(o.model, &m))) goto fail;
    stage = cmd;
    if (!fr_model_is_encoder(m)) {
        rc = fr_errf(FR_EUNSUPP, "%s: a %s model generates text; %s needs an encoder (bert, "
                     "nomic-bert)", o.model, fr_model_hparams(m)->arch, cmd);
        goto fail;
    }
    if (rerank && fr_model_pooling(m) != FR_POOLING_RANK) {
        rc = fr_errf(FR_EUNSUPP, "%s: not a reranker (pooling_type %d, not rank with a "
                     "classifier head)", o.model, fr_model_pooling(m));
        goto fail;
    }
    stage = "input";
    seqs = fr_calloc((size_t)o.n_texts, sizeof *seqs);
    if (!seqs) { rc = FR_ENOMEM; goto fail; }
    int32_t total, longest;
    if ((rc = make_inputs(m, &o, rerank, seqs, &total, &longest))) goto fail;
    stage = "threads";
    if ((rc = fr_pool_create((int)o.threads, &pool))) goto fail;
    stage = "encoder";
    int pooling = rerank ? FR_POOLING_RANK : o.pooling;
    int32_t step = pooling == FR_POOLING_NONE || total <= STEP_TOKENS ? total : STEP_TOKENS;
    if (step < longest) step = longest;
    if ((rc = fr_enc_create(m, step, o.n_texts, pooling, pool, &e))) goto fail;
    const float *out = NULL;
    double t0 = fr_now_s();
    if ((rc = fr_enc_encode(e, seqs, o.n_texts, o.normalize, &out))) goto fail;
    double dt = fr_now_s() - t0;
    int32_t dim = fr_enc_n_out(e);
    if (rerank) {
        sc = fr_malloc((size_t)o.n_texts * sizeof *sc);
        if (!sc) { rc = FR_ENOMEM; goto fail; }
        for (int i = 0; i < o.n_texts; i++) sc[i] = (scored){i, out[(size_t)i * (size_t)dim]};
        qsort(sc, (size_t)o.n_texts, sizeof *sc, by_score);
        for (int i = 0; i < o.n_texts; i++) printf("%d %.6f\n", sc[i].index, (double)sc[i].score);
    } else {
        int32_t rows = fr_enc_pooling(e) == FR_POOLING_NONE ? total : o.n_texts;
        for (int32_t r = 0; r < rows; r++) {
            const float *v = out + (size_t)r * (size_t)dim;
            putchar('[');
            for (int32_t k = 0; k < dim; k++) printf(k ? ", %.7g" : "%.7g", (double)v[k]);
            printf("]\n");
        }
    }
    fflush(stdout);
    fprintf(stderr, "frugal: %d inputs, %d tokens in %.3f s (%.1f inputs/s); %d threads, kernels %s\n",
            o.n_texts, (int)total, dt, dt > 0 ? o.n_texts / dt : 0.0, fr_pool_size(pool),
            fr_kernels_isa());
    code = 0;
    goto done;
fail:
    code = fr_cli_fail(rc, stage);
done:
    for (int i = 0; seqs && i < o.n_texts; i++) fr_free((void *)seqs[i].tokens);
    fr_free(seqs);
    fr_free(sc);
    fr_enc_destroy(e);
    fr_pool_destroy(pool);
    fr_model_close(m);
    fr_free(o.texts);
    return code;
}

int fr_cli_embed(int argc, char **argv) { return run("embed", argc, argv, false); }
int fr_cli_rerank(int argc, char **argv) { return run("rerank", argc, argv, true); }
