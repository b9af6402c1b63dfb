/*
 * test_public_api.c — a program that sees only include/frugal/: open a
 * model, tokenize a chat prompt, run it, sample greedily, detokenize; the
 * error path of a missing file.  It proves the public headers stand alone
 * and agree with llama.cpp: the prompt tokens and the first greedy token of
 * tiny-llama-f32 case 0 are compared with ../shared/testdata/refs; so are
 * the tokens and the embedding of tiny-bert-q8_0 case 0 (fr_enc_*).
 */
#include <frugal/base.h>
#include <frugal/engine.h>
#include <frugal/kernels.h>

#include <jansson.h>

#include "harness.h"

static void test_missing_file(void) {
    fr_model *m = (fr_model *)1;
    int rc = fr_model_open("/nonexistent/model.gguf", &m);
    CHECK(rc < 0);
    CHECK_STR(fr_errname(rc), "ENOENT");
    CHECK(strstr(fr_errdetail(), "/nonexistent/model.gguf") != NULL);
    CHECK_INT(fr_errstatus(rc), 404);
}

static void test_run(void) {
    char path[1024], refpath[1024];
    snprintf(path, sizeof path, "%s/models/tiny-llama-f32.gguf", harness_testdata());
    snprintf(refpath, sizeof refpath, "%s/refs/tiny-llama-f32.json", harness_testdata());
    json_error_t jerr;
    json_t *root = json_load_file(refpath, 0, &jerr);
    CHECK_MSG(root != NULL, "%s: %s", refpath, jerr.text);
    if (!root) return;
    json_t *c0 = json_array_get(json_object_get(root, "cases"), 0);
    const char *prompt = json_string_value(json_object_get(c0, "prompt"));
    json_t *want_tokens = json_object_get(c0, "tokens");
    json_t *greedy = json_object_get(c0, "greedy");

    size_t heap0 = fr_mem_in_use();
    fr_model *m = NULL;
    fr_pool *pool = NULL;
    fr_ctx *c = NULL;
    fr_sampler *s = NULL;
    CHECK_INT(fr_model_open(path, &m), 0);
    CHECK_INT(fr_pool_create(2, &pool), 0);
    if (!m || !pool) goto out;
    const fr_hparams *hp = fr_model_hparams(m);
    CHECK_STR(hp->arch, "llama");
    CHECK_INT(fr_ctx_create(m, 256, pool, &c), 0);
    CHECK(fr_ctx_bytes(c) == fr_ctx_estimate_bytes(m, 256, 2));

    const fr_vocab *v = fr_model_vocab(m);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_INT(fr_tokenize(v, prompt, strlen(prompt), true, false, &ids, &n), 0);
    CHECK_INT(n, json_array_size(want_tokens));
    for (size_t i = 0; i < n && i < json_array_size(want_tokens); i++)
        CHECK_INT(ids[i], json_integer_value(json_array_get(want_tokens, i)));

    const float *logits = NULL;
    CHECK_INT(fr_ctx_eval(c, ids, (int32_t)n, &logits), 0);
    CHECK_INT(fr_ctx_n_past(c), n);
    fr_sampler_params sp;
    fr_sampler_params_default(&sp);
    sp.temp = 0;
    CHECK_INT(fr_sampler_create(&sp, hp->n_vocab, &s), 0);
    int32_t tok = fr_sampler_sample(s, logits);
    CHECK_INT(tok, json_integer_value(json_array_get(greedy, 0)));
    char piece[256];
    fr_detok d;
    fr_detok_init(&d, v);
    CHECK(fr_detok_push(&d, v, tok, piece, sizeof piece) >= 0);
    fr_free(ids);

    /* Longer than the context: an error that changes nothing. */
    int32_t many[300] = {0};
    int32_t before = fr_ctx_n_past(c);
    int rc = fr_ctx_eval(c, many, 300, &logits);
    CHECK_STR(fr_errname(rc), "ETOOLONG");
    CHECK_INT(fr_ctx_n_past(c), before);
out:
    fr_sampler_destroy(s);
    fr_ctx_destroy(c);
    fr_pool_destroy(pool);
    fr_model_close(m);
    CHECK_INT(fr_mem_in_use(), heap0);
    json_decref(root);
}

static void test_embed(void) {
    char path[1024], refpath[1024];
    snprintf(path, sizeof path, "%s/models/tiny-bert-q8_0.gguf", harness_testdata());
    snprintf(refpath, sizeof refpath, "%s/refs/tiny-bert-q8_0.json", harness_testdata());
    json_error_t jerr;
    json_t *root = json_load_file(refpath, 0, &jerr);
    CHECK_MSG(root != NULL, "%s: %s", refpath, jerr.text);
    if (!root) return;
    json_t *c0 = json_array_get(json_object_get(root, "cases"), 0);
    const char *text = json_string_value(json_object_get(c0, "text"));
    json_t *want_tokens = json_object_get(c0, "tokens"), *want = json_object_get(c0, "embedding");

    size_t heap0 = fr_mem_in_use();
    fr_model *m = NULL;
    fr_pool *pool = NULL;
    fr_enc *e = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_INT(fr_model_open(path, &m), 0);
    CHECK_INT(fr_pool_create(2, &pool), 0);
    if (!m || !pool) goto out;
    CHECK(fr_model_is_encoder(m));
    CHECK_INT(fr_model_pooling(m), FR_POOLING_MEAN);
    CHECK_INT(fr_enc_create(m, 512, 8, FR_POOLING_MODEL, pool, &e), 0);
    if (!e) goto out;
    CHECK(fr_enc_bytes(e) == fr_enc_estimate_bytes(m, 512, 8, FR_POOLING_MODEL, 2));
    CHECK_INT(fr_enc_tokenize(m, text, strlen(text), 0, &ids, &n, NULL), 0);
    CHECK_INT(n, json_array_size(want_tokens));
    for (size_t i = 0; i < n && i < json_array_size(want_tokens); i++)
        CHECK_INT(ids[i], json_integer_value(json_array_get(want_tokens, i)));
    fr_enc_seq seq = {ids, (int32_t)n};
    const float *out = NULL;
    CHECK_INT(fr_enc_encode(e, &seq, 1, true, &out), 0);
    CHECK_INT(fr_enc_n_out(e), json_array_size(want));
    double dot = 0, nw = 0, ng = 0;
    for (int32_t i = 0; out && i < fr_enc_n_out(e); i++) {
        double w = json_real_value(json_array_get(want, (size_t)i));
        dot += w * out[i];
        nw += w * w;
        ng += (double)out[i] * out[i];
    }
    CHECK_MSG(dot / sqrt(nw * ng) >= 0.999, "embedding cosine %.6f", dot / sqrt(nw * ng));
    CHECK_STR(fr_errname(fr_enc_encode(e, &seq, 0, true, &out)), "EINVAL");
out:
    fr_free(ids);
    fr_enc_destroy(e);
    fr_pool_destroy(pool);
    fr_model_close(m);
    CHECK_INT(fr_mem_in_use(), heap0);
    json_decref(root);
}

int main(void) {
    test_missing_file();
    test_run();
    test_embed();
    return harness_done();
}
