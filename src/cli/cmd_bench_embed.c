/*
 * cmd_bench_embed.c — `frugal bench-embed`: encoder throughput, in the manner
 * of `frugal bench`.
 *
 *   embed x1      sentences of --words words (16) encoded one at a time;
 *   embed xB      the same sentences in batches of --batch (32);
 *   rerank x1/xB  (a reranker: pooling rank) (query, document) pairs, the
 *                 query of words/2 words, the document of --words words.
 * Each case runs once to warm up, then -r times (3) over --count inputs
 * (default 4 × batch): mean ± sd of inputs/s, and tokens/s.  The sentences
 * are deterministic strings of common English words, so every run and
 * every machine encodes the same tokens.  --json prints one object per
 * case.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

static const char *const words[] = {
    "the", "server", "model", "memory", "small", "machine", "runs", "fast", "every", "request",
    "answer", "question", "language", "weights", "page", "demand", "search", "document", "index",
    "vector", "batch", "token", "thread", "core", "cache", "disk", "network", "client", "budget",
    "load", "evict", "idle", "time", "sentence", "word", "meaning", "close", "far", "river",
    "mountain", "city", "light", "water", "green", "blue", "quick", "brown", "fox", "jumps",
    "over", "lazy", "dog", "people", "often", "think", "about", "simple", "things", "before",
    "after", "night", "morning", "north", "south"};
#define N_WORDS (sizeof words / sizeof words[0])

/* Sentence i of n words into buf (NUL-terminated). */
static void sentence(char *buf, size_t cap, long i, long n) {
    uint32_t x = (uint32_t)i * 2654435761u + 12345u;
    size_t pos = 0;
    for (long w = 0; w < n; w++) {
        x = x * 1664525u + 1013904223u;
        const char *s = words[(x >> 8) % N_WORDS];
        int k = snprintf(buf + pos, cap - pos, w ? " %s" : "%s", s);
        if (k < 0 || (size_t)k >= cap - pos) break;
        pos += (size_t)k;
    }
    if (pos + 1 < cap) buf[pos++] = '.', buf[pos] = 0;
}

typedef struct bcase {
    char test[32];
    long batch, n_inputs, n_tokens;
    double samples[64];
    int n_samples;
    double avg, sd;
} bcase;

static int time_case(fr_enc *e, const fr_enc_seq *seqs, long n, long batch, double *ips) {
    double t0 = fr_now_s();
    for (long i = 0; i < n; i += batch) {
        long k = n - i < batch ? n - i : batch;
        const float *out;
        int rc = fr_enc_encode(e, seqs + i, (int32_t)k, true, &out);
        if (rc) return rc;
    }
    double dt = fr_now_s() - t0;
    *ips = dt > 0 ? (double)n / dt : 0;
    return 0;
}

static int run_case(bcase *c, fr_enc *e, const fr_enc_seq *seqs, long n, long batch, long reps,
                    const char *kind) {
    memset(c, 0, sizeof *c);
    snprintf(c->test, sizeof c->test, "%s x%ld", kind, batch);
    c->batch = batch;
    c->n_inputs = n;
    for (long i = 0; i < n; i++) c->n_tokens += seqs[i].n;
    double ips;
    int rc = time_case(e, seqs, n, batch, &ips); /* warm-up */
    for (long r = 0; !rc && r < reps; r++) {
        rc = time_case(e, seqs, n, batch, &ips);
        c->samples[c->n_samples++] = ips;
    }
    if (rc) return rc;
    double s = 0, s2 = 0;
    for (int i = 0; i < c->n_samples; i++) s += c->samples[i];
    c->avg = s / c->n_samples;
    for (int i = 0; i < c->n_samples; i++) s2 += (c->samples[i] - c->avg) * (c->samples[i] - c->avg);
    c->sd = c->n_samples > 1 ? sqrt(s2 / (c->n_samples - 1)) : 0;
    return 0;
}

int fr_cli_bench_embed(int argc, char **argv) {
    const char *model = NULL;
    long batch = 32, n_words = 16, threads = fr_physical_cores(), reps = 3, count = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && v) { model = v; i++; }
        else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) { if (!fr_cli_int(a, v, 1, 4096, &batch)) return 2; i++; }
        else if (!strcmp(a, "--words") || !strcmp(a, "-w")) { if (!fr_cli_int(a, v, 1, 4096, &n_words)) return 2; i++; }
        else if (!strcmp(a, "--count") || !strcmp(a, "-n")) { if (!fr_cli_int(a, v, 1, 1 << 20, &count)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!fr_cli_int(a, v, 1, 512, &threads)) return 2; i++; }
        else if (!strcmp(a, "-r")) { if (!fr_cli_int(a, v, 1, 64, &reps)) return 2; i++; }
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--ref")) fr_kernels_force_ref(true);
        else return fr_cli_usage("bench-embed: unknown option or missing value '%s'", a);
    }
    if (!model) return fr_cli_usage("bench-embed: -m FILE is required");
    if (count == 0) count = 4 * batch;

    fr_pool *pool = NULL;
    fr_model *m = NULL;
    fr_enc *e = NULL;
    fr_enc_seq *seqs = NULL, *pairs = NULL;
    char *text = NULL, *query = NULL;
    int rc, code = 1;
    const char *stage = model;
    bcase res[4];
    int n_res = 0;
    if ((rc = fr_model_open(model, &m))) goto fail;
    stage = "bench-embed";
    if (!fr_model_is_encoder(m)) {
        rc = fr_errf(FR_EUNSUPP, "%s: not an encoder (frugal bench measures decoders)", model);
        goto fail;
    }
    bool rank = fr_model_pooling(m) == FR_POOLING_RANK;
    stage = "threads";
    if ((rc = fr_pool_create((int)threads, &pool))) goto fail;
    stage = "input";
    size_t cap = (size_t)n_words * 16 + 16;
    text = fr_malloc(cap);
    query = fr_malloc(cap);
    seqs = fr_calloc((size_t)count, sizeof *seqs);
    pairs = fr_calloc((size_t)count, sizeof *pairs);
    if (!text || !query || !seqs || !pairs) { rc = FR_ENOMEM; goto fail; }
    int32_t longest = 0;
    for (long i = 0; i < count; i++) {
        int32_t *ids;
        size_t n;
        sentence(text, cap, i, n_words);
        if ((rc = fr_enc_tokenize(m, text, strlen(text), 0, &ids, &n, NULL))) goto fail;
        seqs[i] = (fr_enc_seq){ids, (int32_t)n};
        if (seqs[i].n > longest) longest = seqs[i].n;
        if (!rank) continue;
        sentence(query, cap, i + count, n_words / 2 > 0 ? n_words / 2 : 1);
        if ((rc = fr_enc_rerank_tokens(m, query, strlen(query), text, strlen(text), 0, &ids, &n,
                                       NULL)))
            goto fail;
        pairs[i] = (fr_enc_seq){ids, (int32_t)n};
        if (pairs[i].n > longest) longest = pairs[i].n;
    }
    stage = "encoder";
    /* room for a whole batch of the longest input */
    long max_tokens = (long)longest * batch;
    if (max_tokens > 1 << 20) max_tokens = 1 << 20;
    if ((rc = fr_enc_create(m, (int32_t)max_tokens, (int32_t)batch, FR_POOLING_MODEL, pool, &e)))
        goto fail;
    stage = "bench";
    const char *kind = rank ? "rerank" : "embed";
    const fr_enc_seq *in = rank ? pairs : seqs;
    if ((rc = run_case(&res[n_res++], e, in, count, 1, reps, kind))) goto fail;
    if (batch > 1 && (rc = run_case(&res[n_res++], e, in, count, batch, reps, kind))) goto fail;

    const char *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    size_t msize = fr_gguf_file_size(fr_model_gguf(m));
    if (json) {
        printf("[\n");
        for (int i = 0; i < n_res; i++) {
            const bcase *c = &res[i];
            printf("  {\"model_filename\": \"%s\", \"model_size\": %zu, \"n_threads\": %ld, "
                   "\"test\": \"%s\", \"batch\": %ld, \"words\": %ld, \"inputs\": %ld, "
                   "\"tokens\": %ld, \"avg_inputs_per_s\": %.3f, \"stddev\": %.3f, "
                   "\"avg_tokens_per_s\": %.1f, \"samples\": [", base, msize, threads, c->test,
                   c->batch, n_words, c->n_inputs, c->n_tokens, c->avg, c->sd,
                   c->avg * (double)c->n_tokens / (double)c->n_inputs);
            for (int k = 0; k < c->n_samples; k++) printf(k ? ", %.3f" : "%.3f", c->samples[k]);
            printf("], \"kernels\": \"%s\", \"encoder_bytes\": %zu, \"peak_rss\": %llu}%s\n",
                   fr_kernels_isa(), fr_enc_bytes(e), (unsigned long long)fr_rss_peak(),
                   i == n_res - 1 ? "" : ",");
        }
        printf("]\n");
    } else {
        printf("| model | size | threads | kernels | test | words | %s/s | tokens/s |\n"
               "|---|---|---|---|---|---|---|---|\n", rank ? "pairs" : "sentences");
        for (int i = 0; i < n_res; i++) {
            const bcase *c = &res[i];
            printf("| %s | %.2f MiB | %ld | %s | %s | %ld | %.2f ± %.2f | %.0f |\n", base,
                   (double)msize / (1024.0 * 1024.0), threads, fr_kernels_isa(), c->test, n_words,
                   c->avg, c->sd, c->avg * (double)c->n_tokens / (double)c->n_inputs);
        }
        printf("peak RSS: %.1f MiB; encoder scratch: %.1f MiB (%ld tokens × %ld sequences)\n",
               (double)fr_rss_peak() / (1024.0 * 1024.0),
               (double)fr_enc_bytes(e) / (1024.0 * 1024.0), max_tokens, batch);
    }
    code = 0;
    goto done;
fail:
    code = fr_cli_fail(rc, stage);
done:
    for (long i = 0; seqs && i < count; i++) fr_free((void *)seqs[i].tokens);
    for (long i = 0; pairs && i < count; i++) fr_free((void *)pairs[i].tokens);
    fr_free(seqs);
    fr_free(pairs);
    fr_free(text);
    fr_free(query);
    fr_enc_destroy(e);
    fr_model_close(m);
    fr_pool_destroy(pool);
    return code;
}
