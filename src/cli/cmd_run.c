/*
 * cmd_run.c — `frugal run`: load a model, evaluate a prompt in one batch, then
 * generate one token per step, streaming text to stdout and timings to
 * stderr.  --print-ids prints the generated ids instead of text;
 * --logits-out writes the logits after the last prompt token.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "engine/chat.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/vocab.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

typedef struct run_opts {
    const char *model, *prompt, *prompt_file, *logits_out;
    long n_predict, n_ctx, threads;
    bool chat, print_ids, ignore_eos;
    fr_sampler_params sp;
} run_opts;

static int parse(int argc, char **argv, run_opts *o) {
    fr_sampler_params_default(&o->sp);
    o->n_predict = 64;
    o->threads = fr_physical_cores();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!v) return fr_cli_usage("%s needs a file", a); o->model = v; i++; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!v) return fr_cli_usage("%s needs text", a); o->prompt = v; i++; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { if (!v) return fr_cli_usage("%s needs a file", a); o->prompt_file = v; i++; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { if (!fr_cli_int(a, v, 0, 1 << 30, &o->n_predict)) return 2; i++; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { if (!fr_cli_int(a, v, 0, 1 << 24, &o->n_ctx)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!fr_cli_int(a, v, 1, 512, &o->threads)) return 2; i++; }
        else if (!strcmp(a, "--temp")) { if (!fr_cli_float(a, v, &o->sp.temp)) return 2; i++; }
        else if (!strcmp(a, "--top-k")) { if (!fr_cli_int(a, v, -1, 1 << 30, &l)) return 2; o->sp.top_k = (int32_t)l; i++; }
        else if (!strcmp(a, "--top-p")) { if (!fr_cli_float(a, v, &o->sp.top_p)) return 2; i++; }
        else if (!strcmp(a, "--min-p")) { if (!fr_cli_float(a, v, &o->sp.min_p)) return 2; i++; }
        else if (!strcmp(a, "--repeat-penalty")) { if (!fr_cli_float(a, v, &o->sp.repeat_penalty)) return 2; i++; }
        else if (!strcmp(a, "--repeat-last-n")) { if (!fr_cli_int(a, v, 0, 1 << 20, &l)) return 2; o->sp.repeat_last_n = (int32_t)l; i++; }
        else if (!strcmp(a, "--seed")) { if (!fr_cli_int(a, v, 0, 0x7fffffffffffffffL, &l)) return 2; o->sp.seed = (uint64_t)l; i++; }
        else if (!strcmp(a, "--logits-out")) { if (!v) return fr_cli_usage("%s needs a path", a); o->logits_out = v; i++; }
        else if (!strcmp(a, "--chat")) o->chat = true;
        else if (!strcmp(a, "--print-ids")) o->print_ids = true;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
        else if (!strcmp(a, "--ref")) fr_kernels_force_ref(true);
        else return fr_cli_usage("run: unknown option '%s'", a);
    }
    if (!o->model) return fr_cli_usage("run: -m FILE is required");
    if (!o->prompt && !o->prompt_file) return fr_cli_usage("run: -p TEXT (or -f FILE) is required");
    return 0;
}

/* Build the token list: plain prompts get BOS as the vocab says and are
 * ordinary text (no special-token parsing); --chat wraps the prompt as one
 * user message in the model's chat template, whose markers alone are
 * special tokens (fr_chat_tokenize). */
static int make_prompt(const fr_model *m, const run_opts *o, const char *text, size_t len,
                       int32_t **ids, size_t *n_ids) {
    const fr_vocab *v = fr_model_vocab(m);
    if (!o->chat) return fr_tokenize(v, text, len, true, false, ids, n_ids);
    fr_gguf_str tmpl = {0};
    char *tmpl_z = NULL;
    if (fr_gguf_get_str(fr_model_gguf(m), "tokenizer.chat_template", &tmpl) == 0) {
        tmpl_z = fr_strndup(tmpl.s, tmpl.len);
        if (!tmpl_z) return FR_ENOMEM;
    }
    int kind = fr_chat_detect(tmpl_z);
    fr_free(tmpl_z);
    if (kind < 0) return kind;
    fr_chat_msg msg = {.role = "user", .content = text};
    return fr_chat_tokenize(v, kind, &msg, 1, true, ids, n_ids);
}

static int write_logits(const char *path, const float *logits, int32_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return fr_errf(FR_EIO, "cannot create %s", path);
    /* little-endian float32: the host order on every target we build for */
    size_t w = fwrite(logits, sizeof(float), (size_t)n, f);
    if (fclose(f) != 0 || w != (size_t)n) return fr_errf(FR_EIO, "cannot write %s", path);
    return 0;
}

int fr_cli_run(int argc, char **argv) {
    run_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;

    char *file_text = NULL;
    size_t text_len = 0;
    const char *text = o.prompt;
    if (o.prompt_file) {
        if ((rc = fr_cli_read_file(o.prompt_file, &file_text, &text_len))) return fr_cli_fail(rc, "prompt file");
        text = file_text;
    } else text_len = strlen(text);

    fr_model *m = NULL;
    fr_pool *pool = NULL;
    fr_ctx *ctx = NULL;
    fr_sampler *smp = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    int exit_code = 1;
    const char *stage = o.model;

    if ((rc = fr_model_open(o.model, &m))) goto fail;
    stage = "prompt";
    if ((rc = make_prompt(m, &o, text, text_len, &ids, &n_ids))) goto fail;
    if (n_ids == 0) { rc = fr_errf(FR_EINVAL, "the prompt has no tokens"); goto fail; }
    stage = "threads";
    if ((rc = fr_pool_create((int)o.threads, &pool))) goto fail;
    const fr_hparams *hp = fr_model_hparams(m);
    int32_t n_ctx = (int32_t)o.n_ctx;
    if (n_ctx == 0) {
        long want = (long)n_ids + o.n_predict;
        n_ctx = want > hp->n_ctx_train ? hp->n_ctx_train : (int32_t)want;
        if (n_ctx < (int32_t)n_ids) n_ctx = (int32_t)n_ids;
    }
    stage = "context";
    if ((rc = fr_ctx_create(m, n_ctx, pool, &ctx))) goto fail;
    if ((rc = fr_sampler_create(&o.sp, hp->n_vocab, &smp))) goto fail;
    gen = fr_malloc(sizeof *gen * (size_t)(o.n_predict + 1));
    if (!gen) { rc = FR_ENOMEM; goto fail; }

    const float *logits = NULL;
    stage = "prompt";
    double t0 = fr_now_s();
    if ((rc = fr_ctx_eval(ctx, ids, (int32_t)n_ids, &logits))) goto fail;
    double t_prompt = fr_now_s() - t0;
    for (size_t i = 0; i < n_ids; i++) fr_sampler_accept(smp, ids[i]);
    if (o.logits_out && (rc = write_logits(o.logits_out, logits, hp->n_vocab))) { stage = "logits"; goto fail; }

    const fr_vocab *v = fr_model_vocab(m);
    fr_detok dt;
    fr_detok_init(&dt, v);
    dt.strip_space = false;   /* a continuation: its leading space is text */
    char out[512];
    long n_gen = 0, n_eval = 0;
    double t1 = fr_now_s();
    stage = "generation";
    while (n_gen < o.n_predict) {
        int32_t tok = fr_sampler_sample(smp, logits);
        if (!o.ignore_eos && fr_vocab_is_eog(v, tok)) break;
        fr_sampler_accept(smp, tok);
        gen[n_gen++] = tok;
        if (!o.print_ids) {
            int w = fr_detok_push(&dt, v, tok, out, sizeof out);
            if (w > 0) { fwrite(out, 1, (size_t)w, stdout); fflush(stdout); }
        }
        if (n_gen == o.n_predict) break;
        if (fr_ctx_n_past(ctx) >= fr_ctx_n_ctx(ctx)) break; /* context full */
        if ((rc = fr_ctx_eval(ctx, &tok, 1, &logits))) goto fail;
        n_eval++;
    }
    double t_gen = fr_now_s() - t1;
    if (o.print_ids) {
        for (long i = 0; i < n_gen; i++) printf(i ? " %d" : "%d", gen[i]);
        printf("\n");
    } else {
        int w = fr_detok_flush(&dt, out, sizeof out);
        if (w > 0) fwrite(out, 1, (size_t)w, stdout);
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr, "frugal: prompt %zu tokens in %.3f s (%.2f tok/s); generation %ld tokens, %ld steps in %.3f s (%.2f tok/s); %d threads, kernels %s\n",
            n_ids, t_prompt, t_prompt > 0 ? (double)n_ids / t_prompt : 0.0, n_gen, n_eval, t_gen,
            t_gen > 0 && n_eval > 0 ? (double)n_eval / t_gen : 0.0, fr_pool_size(pool), fr_kernels_isa());
    exit_code = 0;
    goto done;
fail:
    exit_code = fr_cli_fail(rc, stage);
done:
    fr_free(gen);
    fr_free(ids);
    fr_sampler_destroy(smp);
    fr_ctx_destroy(ctx);
    fr_pool_destroy(pool);
    fr_model_close(m);
    fr_free(file_text);
    return exit_code;
}
