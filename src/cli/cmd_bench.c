/*
 * cmd_bench.c — `frugal bench`, in the manner of llama-bench.
 *
 *   pp: one batch of p prompt tokens on an empty context, tokens/s;
 *   tg: n tokens generated one at a time after an empty context, tokens/s;
 *   each test runs once to warm up, then r times: mean ± sd.
 *
 * For generation it adds the decode roofline: the bytes one step reads
 * (every matmul weight, one embedding row, the KV cache so far), the
 * machine's read bandwidth measured by the same command (--membw alone
 * prints just that), and the percentage of the limit reached.
 * --json prints an array with one object per test, with llama-bench's field
 * names where they apply.
 *
 * --grammar FILE (GBNF) or --json-schema FILE (compiled as response_format
 * json_schema compiles it) add two generation tests that sample, as the
 * scheduler does: "tg-sampled" (the default sampler chain on the logits)
 * and "tg-grammar" (the same with the grammar's token mask applied first,
 * as sched.c applies it); their difference is the constraint's cost.  A
 * generation that completes the grammar starts a new matcher, as a new
 * request would; each run starts with an empty mask cache, which its
 * outputs share (as the scheduler's requests share one per model).  For tg-grammar it prints
 * the time in the grammar per token (mask, applying it, advancing the
 * matcher) and the mask cache's hit rate.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "engine/grammar.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/vocab.h"
#include "kernels/kernels.h"
#include "kernels/membw.h"
#include "kernels/pool.h"
#include "server/server.h"

#define MEMBW_BYTES ((size_t)1 << 30)

typedef struct bench_result {
    const char *test;
    long n_prompt, n_gen;
    double avg, sd;
    double samples[64];
    int n_samples;
    double bytes_per_token;  /* tg only */
    double grammar_ms;       /* tg-grammar: ms per token in the grammar */
    double hit_rate;         /* tg-grammar: mask cache hits / masks */
    long completions;        /* tg-grammar: sentences completed */
} bench_result;

static void stats(bench_result *r) {
    double s = 0, s2 = 0;
    for (int i = 0; i < r->n_samples; i++) s += r->samples[i];
    r->avg = s / r->n_samples;
    for (int i = 0; i < r->n_samples; i++) s2 += (r->samples[i] - r->avg) * (r->samples[i] - r->avg);
    r->sd = r->n_samples > 1 ? sqrt(s2 / (r->n_samples - 1)) : 0;
}

/* Deterministic "random" prompt ids, away from the special tokens. */
static void fill_tokens(int32_t *t, long n, int32_t n_vocab) {
    uint32_t x = 12345;
    for (long i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        t[i] = (int32_t)(3 + (x >> 8) % (uint32_t)(n_vocab - 3));
    }
}

/* Measure read bandwidth in a child process, so that the probe's buffer
 * never counts in this process's peak RSS.  Returns bytes/s or FR_E*. */
static double membw_forked(int threads) {
    int fd[2];
    if (pipe(fd) != 0) return FR_EIO;
    pid_t pid = fork();
    if (pid < 0) { close(fd[0]); close(fd[1]); return FR_EIO; }
    if (pid == 0) {
        close(fd[0]);
        fr_pool *pool = NULL;
        double bw = fr_pool_create(threads, &pool) ? FR_ENOMEM : fr_membw_read(pool, MEMBW_BYTES, 5);
        fr_pool_destroy(pool);
        ssize_t w = write(fd[1], &bw, sizeof bw);
        _exit(w == (ssize_t)sizeof bw ? 0 : 1);
    }
    close(fd[1]);
    double bw = FR_EIO;
    ssize_t r = read(fd[0], &bw, sizeof bw);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return r == (ssize_t)sizeof bw ? bw : FR_EIO;
}

static int run_pp(fr_ctx *c, const int32_t *toks, long p, double *tps) {
    const float *logits;
    fr_ctx_reset(c);
    double t0 = fr_now_s();
    int rc = fr_ctx_eval(c, toks, (int32_t)p, &logits);
    double dt = fr_now_s() - t0;
    *tps = dt > 0 ? (double)p / dt : 0;
    return rc;
}

static int run_tg(fr_ctx *c, const int32_t *toks, long n, double *tps) {
    const float *logits;
    fr_ctx_reset(c);
    double t0 = fr_now_s();
    for (long i = 0; i < n; i++) {
        int rc = fr_ctx_eval(c, &toks[i], 1, &logits);
        if (rc) return rc;
    }
    double dt = fr_now_s() - t0;
    *tps = dt > 0 ? (double)n / dt : 0;
    return 0;
}

/* Generation with sampling, and with the grammar g's masks when g. */
typedef struct gacc {
    double grammar_s;
    uint64_t masks, hits;
    long completions;
} gacc;

static void gacc_add(gacc *a, fr_gmatcher *gm) {
    fr_gmatcher_stats st;
    fr_gmatcher_stats_get(gm, &st);
    a->masks += st.masks;
    a->hits += st.hits;
}

static int run_tg_sampled(fr_ctx *c, const fr_model *m, fr_grammar *g, const fr_gvocab *gv, long n,
                          double *tps, gacc *acc) {
    const fr_vocab *v = fr_model_vocab(m);
    int32_t nv = fr_model_hparams(m)->n_vocab;
    fr_sampler_params sp;
    fr_sampler_params_default(&sp);
    sp.seed = 42;
    fr_sampler *smp = NULL;
    fr_gmatcher *gm = NULL;
    fr_gmask_cache *gc = NULL;
    float *masked = NULL;
    int rc = fr_sampler_create(&sp, nv, &smp);
    /* each run starts with an empty cache, shared by its outputs as the
     * scheduler's is by its requests */
    if (!rc && g) rc = fr_gmask_cache_create(gv, FR_GMASK_SHARED_BYTES, &gc);
    if (!rc && g && !(masked = fr_malloc((size_t)nv * sizeof *masked))) rc = FR_ENOMEM;
    if (!rc && g) rc = fr_gmatcher_create(g, gv, gc, &gm);
    if (rc) goto out;
    fr_ctx_reset(c);
    int32_t tok = fr_vocab_bos(v) >= 0 ? fr_vocab_bos(v) : 1;
    double t0 = fr_now_s();
    for (long i = 0; i < n; i++) {
        const float *logits;
        if ((rc = fr_ctx_eval(c, &tok, 1, &logits))) goto out;
        double tg = fr_now_s();
        if (gm) {
            const uint64_t *mask;
            int32_t n_allowed;
            if ((rc = fr_gmatcher_mask(gm, &mask, &n_allowed))) goto out;
            if (n_allowed == 0) {
                rc = fr_errf(FR_EINVAL, "the grammar reached a dead end");
                goto out;
            }
            for (int32_t k = 0; k < nv; k++) masked[k] = mask[k >> 6] >> (k & 63) & 1 ? logits[k] : -INFINITY;
            logits = masked;
        }
        acc->grammar_s += fr_now_s() - tg;
        tok = fr_sampler_sample(smp, logits);
        fr_sampler_accept(smp, tok);
        tg = fr_now_s();
        if (gm) {
            bool end = fr_vocab_is_eog(v, tok);
            if (!end) {
                if ((rc = fr_gmatcher_accept_token(gm, tok))) goto out;
                end = fr_gmatcher_done(gm);
            }
            if (end) {   /* complete: the next "request" starts */
                acc->completions++;
                gacc_add(acc, gm);
                fr_gmatcher_destroy(gm);
                gm = NULL;
                if ((rc = fr_gmatcher_create(g, gv, gc, &gm))) goto out;
            }
        }
        acc->grammar_s += fr_now_s() - tg;
    }
    double dt = fr_now_s() - t0;
    *tps = dt > 0 ? (double)n / dt : 0;
out:
    if (gm) gacc_add(acc, gm);
    fr_gmatcher_destroy(gm);
    fr_gmask_cache_destroy(gc);
    fr_free(masked);
    fr_sampler_destroy(smp);
    return rc;
}

static void print_json_result(const bench_result *r, const char *model, size_t model_size,
                              int threads, double membw, bool last) {
    printf("  {\"model_filename\": \"%s\", \"model_size\": %zu, \"n_threads\": %d, "
           "\"n_prompt\": %ld, \"n_gen\": %ld, \"test\": \"%s\", \"avg_ts\": %.3f, "
           "\"stddev_ts\": %.3f, \"samples_ts\": [",
           model, model_size, threads, r->n_prompt, r->n_gen, r->test, r->avg, r->sd);
    for (int i = 0; i < r->n_samples; i++) printf(i ? ", %.3f" : "%.3f", r->samples[i]);
    printf("], \"kernels\": \"%s\"", fr_kernels_isa());
    if (r->n_gen > 0) {
        double pct = membw > 0 ? 100.0 * r->avg * r->bytes_per_token / membw : 0;
        printf(", \"bytes_per_token\": %.0f, \"membw_bytes_per_s\": %.0f, \"roofline_pct\": %.1f",
               r->bytes_per_token, membw, pct);
    }
    if (!strcmp(r->test, "tg-grammar"))
        printf(", \"grammar_ms_per_token\": %.4f, \"mask_cache_hit_rate\": %.4f, \"completions\": %ld",
               r->grammar_ms, r->hit_rate, r->completions);
    printf(", \"peak_rss\": %llu}%s\n", (unsigned long long)fr_rss_peak(), last ? "" : ",");
}

int fr_cli_bench(int argc, char **argv) {
    const char *model = NULL, *gfile = NULL, *sfile = NULL;
    long p = 512, n = 128, threads = fr_physical_cores(), reps = 3;
    bool json = false, membw_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && v) { model = v; i++; }
        else if (!strcmp(a, "-p")) { if (!fr_cli_int(a, v, 0, 1 << 16, &p)) return 2; i++; }
        else if (!strcmp(a, "-n")) { if (!fr_cli_int(a, v, 0, 1 << 16, &n)) return 2; i++; }
        else if (!strcmp(a, "-t")) { if (!fr_cli_int(a, v, 1, 512, &threads)) return 2; i++; }
        else if (!strcmp(a, "-r")) { if (!fr_cli_int(a, v, 1, 64, &reps)) return 2; i++; }
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--membw")) membw_only = true;
        else if (!strcmp(a, "--ref")) fr_kernels_force_ref(true);
        else if (!strcmp(a, "--grammar") && v) { gfile = v; i++; }
        else if (!strcmp(a, "--json-schema") && v) { sfile = v; i++; }
        else return fr_cli_usage("bench: unknown option or missing value '%s'", a);
    }
    if (!model && !membw_only) return fr_cli_usage("bench: -m FILE (or --membw) is required");
    if (gfile && sfile) return fr_cli_usage("bench: --grammar or --json-schema, not both");

    fr_pool *pool = NULL;
    fr_model *m = NULL;
    fr_ctx *c = NULL;
    int32_t *toks = NULL;
    char *gtext = NULL;
    fr_grammar *gram = NULL;
    fr_gvocab *gv = NULL;
    int rc, code = 1;
    const char *stage = "membw";
    double membw = membw_forked((int)threads);
    if (membw < 0) { rc = (int)membw; goto fail; }
    stage = "threads";
    if ((rc = fr_pool_create((int)threads, &pool))) goto fail;
    if (membw_only) {
        if (json) printf("{\"membw_bytes_per_s\": %.0f, \"n_threads\": %ld}\n", membw, threads);
        else printf("read bandwidth: %.2f GB/s (%ld threads)\n", membw / 1e9, threads);
        code = 0;
        goto done;
    }
    stage = model;
    if ((rc = fr_model_open(model, &m))) goto fail;
    stage = "bench";
    if (fr_model_is_encoder(m)) {
        rc = fr_errf(FR_EUNSUPP, "%s: an encoder; measure it with frugal bench-embed", model);
        goto fail;
    }
    const fr_hparams *hp = fr_model_hparams(m);
    long n_ctx = p > n ? p : n;
    if (n_ctx < 1) n_ctx = 1;
    stage = "context";
    if ((rc = fr_ctx_create(m, (int32_t)n_ctx, pool, &c))) goto fail;
    toks = fr_malloc(sizeof *toks * (size_t)n_ctx);
    if (!toks) { rc = FR_ENOMEM; goto fail; }
    fill_tokens(toks, n_ctx, hp->n_vocab);

    if (gfile || sfile) {
        stage = gfile ? gfile : sfile;
        size_t len = 0;
        FILE *f = fopen(stage, "rb");
        if (!f) {
            rc = fr_errf(FR_EIO, "cannot open");
            goto fail;
        }
        char *txt = fr_malloc(1 << 20);
        len = txt ? fread(txt, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        if (!txt) { rc = FR_ENOMEM; goto fail; }
        txt[len] = 0;
        if (sfile) {
            char err[256];
            rc = fr_server_schema_gbnf(txt, len, &gtext, err, sizeof err);
            fr_free(txt);
            if (rc) {
                rc = fr_errf(rc, "the schema%s", err);
                goto fail;
            }
        } else gtext = txt;
        if ((rc = fr_grammar_parse(gtext, strlen(gtext), &gram))) goto fail;
        if ((rc = fr_gvocab_create(fr_model_vocab(m), &gv))) goto fail;
        stage = "bench";
    }

    bench_result res[4];
    int n_res = 0;
    stage = "bench";
    if (p > 0) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        r->test = "pp";
        r->n_prompt = p;
        double tps;
        if ((rc = run_pp(c, toks, p, &tps))) goto fail; /* warm-up */
        for (long i = 0; i < reps; i++) {
            if ((rc = run_pp(c, toks, p, &tps))) goto fail;
            r->samples[r->n_samples++] = tps;
        }
        stats(r);
    }
    if (n > 0) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        r->test = "tg";
        r->n_gen = n;
        double tps;
        if ((rc = run_tg(c, toks, n, &tps))) goto fail;
        for (long i = 0; i < reps; i++) {
            if ((rc = run_tg(c, toks, n, &tps))) goto fail;
            r->samples[r->n_samples++] = tps;
        }
        stats(r);
        /* average KV bytes read per step: half the cache filled, K and V, f16 */
        double kv = (double)hp->n_layer * 2.0 * hp->n_head_kv * hp->head_dim * 2.0 * ((double)n / 2.0);
        r->bytes_per_token = (double)fr_model_weight_bytes(m) + kv;
        if (gram) {   /* the two alternate, so that a noisy neighbour hits both alike */
            bench_result *q[2] = {&res[n_res], &res[n_res + 1]};
            gacc acc[2];
            memset(acc, 0, sizeof acc);
            n_res += 2;
            for (int k = 0; k < 2; k++) {
                memset(q[k], 0, sizeof *q[k]);
                q[k]->test = k ? "tg-grammar" : "tg-sampled";
                q[k]->n_gen = n;
                q[k]->bytes_per_token = r->bytes_per_token;
                if ((rc = run_tg_sampled(c, m, k ? gram : NULL, gv, n, &tps, &acc[k]))) goto fail;
                acc[k] = (gacc){0};
            }
            for (long i = 0; i < reps; i++)
                for (int k = 0; k < 2; k++) {
                    if ((rc = run_tg_sampled(c, m, k ? gram : NULL, gv, n, &tps, &acc[k]))) goto fail;
                    q[k]->samples[q[k]->n_samples++] = tps;
                }
            for (int k = 0; k < 2; k++) {
                stats(q[k]);
                q[k]->grammar_ms = acc[k].grammar_s * 1e3 / ((double)n * (double)reps);
                q[k]->hit_rate = acc[k].masks ? (double)acc[k].hits / (double)acc[k].masks : 0;
                q[k]->completions = acc[k].completions;
            }
        }
    }
    const char *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    size_t msize = fr_gguf_file_size(fr_model_gguf(m));
    if (json) {
        printf("[\n");
        for (int i = 0; i < n_res; i++) print_json_result(&res[i], base, msize, (int)threads, membw, i == n_res - 1);
        printf("]\n");
    } else {
        printf("| model | size | threads | kernels | test | t/s | roofline |\n|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < n_res; i++) {
            bench_result *r = &res[i];
            char test[32], roof[96] = "";
            if (r->n_prompt) snprintf(test, sizeof test, "pp%ld", r->n_prompt);
            else if (strcmp(r->test, "tg")) snprintf(test, sizeof test, "%s%ld", r->test, r->n_gen);
            else snprintf(test, sizeof test, "tg%ld", r->n_gen);
            if (r->n_gen)
                snprintf(roof, sizeof roof, "%.1f%% of %.1f GB/s (%.1f MB/token)",
                         100.0 * r->avg * r->bytes_per_token / membw, membw / 1e9, r->bytes_per_token / 1e6);
            printf("| %s | %.2f MiB | %ld | %s | %s | %.2f ± %.2f | %s |\n", base,
                   (double)msize / (1024.0 * 1024.0), threads, fr_kernels_isa(), test, r->avg, r->sd, roof);
        }
        for (int i = 0; i < n_res; i++)
            if (!strcmp(res[i].test, "tg-grammar"))
                printf("grammar: %.3f ms per token (mask, apply, advance), mask cache hit rate %.1f%%, "
                       "%ld outputs completed\n", res[i].grammar_ms, 100 * res[i].hit_rate, res[i].completions);
        printf("peak RSS: %.1f MiB; KV cache: %.1f MiB\n", (double)fr_rss_peak() / (1024.0 * 1024.0),
               (double)fr_ctx_kv_bytes(c) / (1024.0 * 1024.0));
    }
    code = 0;
    goto done;
fail:
    code = fr_cli_fail(rc, stage);
done:
    fr_free(toks);
    fr_free(gtext);
    fr_grammar_unref(gram);
    fr_gvocab_destroy(gv);
    fr_ctx_destroy(c);
    fr_model_close(m);
    fr_pool_destroy(pool);
    return code;
}
