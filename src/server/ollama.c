/*
 * ollama.c — Ollama's API beside OpenAI's (docs/API-ollama.md),
 * so that tools built for Ollama (ollama-js, Open WebUI, platforms whose
 * LLM is "an Ollama container") work unchanged:
 *
 *   GET, HEAD /            "Ollama is running" (no key needed)
 *   GET  /api/version      {"version"}
 *   GET  /api/tags         the models, with Ollama's details from the GGUF header
 *   GET  /api/ps           the loaded models, with expires_at from their keep_alive
 *   POST /api/show         modelfile, parameters, template, details, model_info
 *   POST /api/generate     prompt (+ system, raw): NDJSON stream or one object
 *   POST /api/chat         messages: NDJSON stream or one object
 *   POST /api/embed        {"embeddings": [[...]]} (embeddings.c)
 *   POST /api/embeddings   the older {"embedding": [...]} (embeddings.c)
 *
 * Same models, budget, schedulers and generation path as OpenAI's routes:
 * a generation is parsed here into an fr_gen_req and run by gen.c's
 * fr__gen_run with hooks that reshape its answer — the non-streamed
 * chat.completion becomes Ollama's final object, and each streamed chunk
 * becomes one NDJSON line (hooks.chunk, hooks.ndjson: sse.c's stream
 * machinery with another framing, so a client that goes away cancels the
 * generation and a slow reader does not hold it).  The last line, or the
 * one object, carries done_reason and the counters in nanoseconds:
 *
 *   total_duration        arrival of the request → the answer
 *   load_duration         acquiring the model (its load, when it was not resident)
 *   prompt_eval_duration  slot → first token (fr_gen_out.ttft_ms − queue_ms)
 *   eval_duration         first token → finish
 *
 * The model is acquired here (as collections.c's ask does) to time the
 * load, to pick the prompt's form (a model without a chat template
 * generates from the raw prompt) and to answer an empty prompt or
 * message list: that only loads the model ("done_reason": "load"), or
 * with keep_alive 0 unloads it ("unload"), as Ollama does.
 *
 * Names.  Ollama calls models "name:tag"; the list shows each of ours as
 * "<id>:latest", and a request may name a model by its id, its alias, or
 * either with ":latest".  Replies echo the name the request used.
 *
 * Fields.  options: temperature, top_k, top_p, min_p, seed, stop,
 * repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty go
 * to the sampler as OpenAI's fields do (same ranges: a bad value is a 400
 * naming "options.x"); num_predict is max_tokens (-1, -2 or 0: until the
 * context ends); num_ctx is accepted, and logged when it differs from the
 * loaded context, which a request cannot change; other options are
 * ignored.  keep_alive: a duration ("5m", "0", "-1", any negative one is
 * forever) or seconds.  format: "json" or a JSON schema object, enforced
 * by constrained decoding (fr_gen_req.grammar).  tools: tools.c's, as on
 * /v1/chat/completions with tool_choice "auto": the definitions go into
 * the model's template, assistant messages may carry tool_calls and tool
 * messages answer them, and the answer's calls come back in Ollama's shape
 * ({"function": {"name", "arguments": {...}}}; streamed, one line per call
 * as it completes; done_reason "stop").  images are refused (400: frugal serves
 * text models); suffix is refused (no fill-in-the-middle); template and
 * context are accepted and ignored.
 *
 * Errors take Ollama's shape, {"error": "message"}, with the statuses of
 * the rest of the API (404 unknown model, 400 bad field, 503 busy with
 * Retry-After): reply.c answers so for every path under /api/.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/sysinfo.h"
#include "engine/gguf.h"
#include "kernels/types.h"
#include "manager/loader_gguf.h"
#include "server/server_int.h"

/* The Ollama release whose API this follows (clients gate features on it:
 * structured outputs came in 0.5, tools in 0.3). */
#define OLLAMA_API_VERSION "0.11.0"
#define MAX_MESSAGES 1024
#define NS_PER_MS 1000000.0

/* ---- small helpers ---- */

/* RFC 3339 in UTC with microseconds, as Go prints times. */
static void rfc3339(double unix_s, char *buf, size_t cap) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    long us = (long)((unix_s - (double)t) * 1e6);
    if (us < 0) us = 0;
    if (us > 999999) us = 999999;
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06ldZ", d, us);
}

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *time_json(double unix_s) {
    char b[48];
    rfc3339(unix_s, b, sizeof b);
    return json_string(b);
}

/* "<id>:latest", or the id when it has a tag already. */
static json_t *name_json(const char *id) {
    if (strchr(id, ':')) return json_string(id);
    char b[160];
    snprintf(b, sizeof b, "%s:latest", id);
    return json_string(b);
}

/* The model a request names (id, alias, either with ":latest"): its
 * record, or 404 {"error": "model 'x' not found"} (FR_REPLIED). */
static int resolve(fr_req *rq, const char *name, fr_model_info *info) {
    fr_manager *mg = fr__req_manager(rq);
    if (!mg) return fr__reply_error(rq, 404, "model_not_found", "model", "model '%.128s' not found", name);
    int rc = fr_manager_get(mg, name, info);
    size_t n = strlen(name);
    if (rc == FR_ENOENT && n > 7 && strcmp(name + n - 7, ":latest") == 0 && n - 7 < 256) {
        char base[256];
        memcpy(base, name, n - 7);
        base[n - 7] = 0;
        rc = fr_manager_get(mg, base, info);
    }
    if (rc == FR_ENOENT) return fr__reply_error(rq, 404, "model_not_found", "model", "model '%.128s' not found", name);
    return rc;
}

/* The request's model: "model", or the older "name". */
static int model_field(const fr_body *b, const char **name) {
    int rc = fr__body_str(b, "model", 0, name, NULL);
    if (rc || *name) return rc;
    if ((rc = fr__body_str(b, "name", 0, name, NULL)) || *name) return rc;
    return fr__reply_error(b->rq, 400, "missing_field", "model", "model is required");
}

/* keep_alive as Ollama reads it: a duration ("5m", "0"), any negative one
 * ("-1", "-1m") forever, or a number of seconds. */
static int keep_alive(const fr_body *b, int64_t *out) {
    const char *s = json_string_value(json_object_get(b->obj, "keep_alive"));
    int64_t ms;
    if (s && s[0] == '-' && strcmp(s, "-1") != 0 && fr_parse_duration_ms("keep_alive", s + 1, &ms) == 0) {
        *out = FR_DURATION_NEVER;
        return 0;
    }
    return fr__body_keep_alive(b, out);
}

/* ---- what the GGUF header says (details, model_info) ---- */

/* llama.cpp's general.file_type names (llama_ftype). */
static const char *ftype_name(uint32_t t) {
    static const char *const names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1",
        [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
        [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [32] = "BF16",
    };
    return t < sizeof names / sizeof *names ? names[t] : NULL;
}

typedef struct gguf_facts {
    char family[64];
    char parameter_size[32];
    char quantization[32];
    uint64_t n_params;
} gguf_facts;

static void facts_of(const fr_gguf *g, gguf_facts *f) {
    memset(f, 0, sizeof *f);
    fr_gguf_str arch;
    if (fr_gguf_get_str(g, "general.architecture", &arch) == 0)
        snprintf(f->family, sizeof f->family, "%.*s", (int)(arch.len < 63 ? arch.len : 63), arch.s);
    /* parameters: the tensors' elements; quantization: the file type, else
     * the type holding most of the bytes */
    uint64_t bytes_by_type[64] = {0};
    for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (int d = 0; d < t->n_dims; d++) ne *= (uint64_t)t->ne[d];
        f->n_params += ne;
        if (t->type >= 0 && t->type < 64 && t->n_dims >= 2) bytes_by_type[t->type] += t->nbytes;
    }
    uint64_t pc;
    if (fr_gguf_get_u64(g, "general.parameter_count", &pc) == 0 && pc > 0) f->n_params = pc;
    double p = (double)f->n_params;
    if (p >= 1e9) snprintf(f->parameter_size, sizeof f->parameter_size, "%.1fB", p / 1e9);
    else if (p >= 1e6) snprintf(f->parameter_size, sizeof f->parameter_size, "%.2fM", p / 1e6);
    else snprintf(f->parameter_size, sizeof f->parameter_size, "%.2fK", p / 1e3);
    uint32_t ft;
    const char *q = fr_gguf_get_u32(g, "general.file_type", &ft) == 0 ? ftype_name(ft) : NULL;
    if (!q) {
        int best = -1;
        for (int t = 0; t < 64; t++)
            if (bytes_by_type[t] && (best < 0 || bytes_by_type[t] > bytes_by_type[best])) best = t;
        q = best >= 0 ? fr_type_name(best) : "unknown";
    }
    size_t k = 0;
    for (; q[k] && k + 1 < sizeof f->quantization; k++) f->quantization[k] = (char)toupper((unsigned char)q[k]);
    f->quantization[k] = 0;
}

static json_t *details_json(const gguf_facts *f) {
    json_t *fam = f->family[0] ? json_pack("[s]", f->family) : json_null();
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "parent_model", "", "format", "gguf", "family", f->family,
                     "families", fam, "parameter_size", f->parameter_size, "quantization_level", f->quantization);
}

/* Not the file's sha256 (hashing gigabytes for a listing is not frugal):
 * a 64-hex-digit tag of the model's id, size and modification time, which
 * changes when the file does. */
static void digest_of(const fr_model_info *m, char out[65]) {
    for (int part = 0; part < 4; part++) {
        uint64_t h = 1469598103934665603ull ^ (uint64_t)part * 0x9e3779b97f4a7c15ull;
        const unsigned char *s = (const unsigned char *)m->id;
        for (; *s; s++) h = (h ^ *s) * 1099511628211ull;
        uint64_t extra[2] = {m->file_bytes, (uint64_t)m->created};
        const unsigned char *e = (const unsigned char *)extra;
        for (size_t i = 0; i < sizeof extra; i++) h = (h ^ e[i]) * 1099511628211ull;
        snprintf(out + part * 16, 17, "%016" PRIx64, h);
    }
}

/* One entry of /api/tags or /api/ps (without the latter's fields). */
static json_t *model_entry(const fr_model_info *m) {
    gguf_facts f;
    fr_gguf *g = NULL;
    if (fr_gguf_open(m->path, &g) == 0) facts_of(g, &f);
    else {
        memset(&f, 0, sizeof f);
        snprintf(f.quantization, sizeof f.quantization, "unknown");
    }
    fr_gguf_close(g);
    fr_errclear();
    char digest[65];
    digest_of(m, digest);
    return json_pack("{s:o, s:o, s:o, s:I, s:s, s:o}", "name", name_json(m->id), "model", name_json(m->id),
                     "modified_at", time_json(m->created), "size", (json_int_t)m->file_bytes, "digest", digest,
                     "details", details_json(&f));
}

/* ---- GET, HEAD / and GET /api/version ---- */

int fr__h_ollama_root(fr_req *rq) {
    static const char text[] = "Ollama is running";
    return fr__reply_text(rq, 200, "text/plain; charset=utf-8", text, sizeof text - 1);
}

int fr__h_ollama_version(fr_req *rq) {
    return fr__reply_json(rq, 200, json_pack("{s:s}", "version", OLLAMA_API_VERSION));
}

/* ---- GET /api/tags, GET /api/ps ---- */

static int list(fr_req *rq, bool loaded_only) {
    fr_manager *mg = fr__req_manager(rq);
    json_t *models = json_array();
    if (!models) return FR_ENOMEM;
    if (mg) {
        fr_model_info *all = NULL;
        size_t n = 0;
        int rc = fr_manager_list(mg, &all, &n);
        if (rc) {
            json_decref(models);
            return rc;
        }
        double now = unix_now();
        for (size_t i = 0; i < n; i++) {
            const fr_model_info *m = &all[i];
            if (loaded_only && m->state != FR_MS_LOADED) continue;
            json_t *e = model_entry(m);
            if (e && loaded_only) {
                uint64_t resident = m->usage.weights_resident + m->usage.kv + m->usage.scratch;
                uint64_t size = resident > m->estimated_bytes ? resident : m->estimated_bytes;
                /* idle: last use + keep_alive; in use: keep_alive from now */
                double from = m->in_flight > 0 || m->last_used <= 0 ? now : m->last_used;
                double exp = m->keep_alive_ms < 0 ? 253402300799.0   /* never: 9999-12-31 */
                                                  : from + (double)m->keep_alive_ms / 1e3;
                json_object_set_new(e, "size", json_integer((json_int_t)size));
                json_object_set_new(e, "size_vram", json_integer(0));
                json_object_set_new(e, "expires_at", time_json(exp));
            }
            json_array_append_new(models, e);
        }
        fr_free(all);
    }
    return fr__reply_json(rq, 200, json_pack("{s:o}", "models", models));
}

int fr__h_ollama_tags(fr_req *rq) { return list(rq, false); }
int fr__h_ollama_ps(fr_req *rq) { return list(rq, true); }

/* ---- POST /api/show ---- */

/* The header's scalar pairs by name (arrays as [] and the chat template,
 * which is "template", left out), as Ollama's model_info. */
static json_t *model_info_json(const fr_gguf *g) {
    json_t *o = json_object();
    for (int64_t i = 0; o && i < fr_gguf_n_kv(g); i++) {
        fr_gguf_str k = fr_gguf_key(g, i);
        char key[256];
        if (k.len >= sizeof key) continue;
        memcpy(key, k.s, k.len);
        key[k.len] = 0;
        if (!strcmp(key, "tokenizer.chat_template")) continue;
        json_t *v = NULL;
        int64_t iv;
        float fv;
        bool bv;
        fr_gguf_str sv;
        switch (fr_gguf_kv_type(g, i)) {
        case FR_GGUF_STRING: if (fr_gguf_get_str(g, key, &sv) == 0) v = fr__json_text(sv.s, sv.len); break;
        case FR_GGUF_F32: case FR_GGUF_F64: if (fr_gguf_get_f32(g, key, &fv) == 0) v = json_real(fv); break;
        case FR_GGUF_BOOL: if (fr_gguf_get_bool(g, key, &bv) == 0) v = json_boolean(bv); break;
        case FR_GGUF_ARRAY: v = json_array(); break;
        default: if (fr_gguf_get_i64(g, key, &iv) == 0) v = json_integer(iv); break;
        }
        if (v) json_object_set_new(o, key, v);
    }
    fr_errclear();
    return o;
}

static json_t *caps_json(unsigned caps) {
    json_t *a = json_array();
    if (caps & (FR_CAP_CHAT | FR_CAP_COMPLETION)) json_array_append_new(a, json_string("completion"));
    if (caps & FR_CAP_EMBEDDING) json_array_append_new(a, json_string("embedding"));
    return a;
}

int fr__h_ollama_show(fr_req *rq) {
    fr_body b;
    const char *name = NULL;
    fr_model_info m;
    int rc;
    if ((rc = fr__body_need(rq, &b)) || (rc = model_field(&b, &name)) || (rc = resolve(rq, name, &m))) return rc;
    fr_gguf *g = NULL;
    if ((rc = fr_gguf_open(m.path, &g))) return fr__reply_err(rq, rc, "model");
    gguf_facts f;
    facts_of(g, &f);
    fr_gguf_str tpl = {"", 0};
    fr_gguf_get_str(g, "tokenizer.chat_template", &tpl);
    fr_errclear();
    const char *base = strrchr(m.path, '/');
    base = base ? base + 1 : m.path;
    char modelfile[600];
    snprintf(modelfile, sizeof modelfile, "# Modelfile generated by frugal\nFROM %s\n", base);
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "modelfile", modelfile, "parameters", "",
                          "template", fr__json_text(tpl.s, tpl.len), "details", details_json(&f), "model_info",
                          model_info_json(g), "capabilities", caps_json(m.caps), "modified_at",
                          time_json(m.created));
    fr_gguf_str lic;
    if (o && fr_gguf_get_str(g, "general.license", &lic) == 0)
        json_object_set_new(o, "license", fr__json_text(lic.s, lic.len));
    fr_errclear();
    fr_gguf_close(g);
    return fr__reply_json(rq, 200, o);
}

/* ---- POST /api/generate and /api/chat ---- */

/* A generation in progress (the request's arena). */
typedef struct orun {
    fr_req *rq;
    const char *name;           /* as the request named the model */
    bool chat;                  /* /api/chat: "message"; /api/generate: "response" */
    double load_ms;
    fr_gen_stats st;
    fr_gen_hooks hk;
    json_t *calls;              /* a stream's tool calls so far: [{"name", "arguments"}] by index */
} orun;

/* {"model", "created_at", "message"|"response"} */
static json_t *head(const orun *o, json_t *text) {
    if (!text) return NULL;
    if (o->chat)
        return json_pack("{s:s, s:o, s:{s:s, s:o}}", "model", o->name, "created_at", time_json(unix_now()),
                         "message", "role", "assistant", "content", text);
    return json_pack("{s:s, s:o, s:o}", "model", o->name, "created_at", time_json(unix_now()), "response", text);
}

static json_int_t ns(double ms) { return ms > 0 ? (json_int_t)(ms * NS_PER_MS) : 0; }

/* The last object: done, done_reason and the counters. */
static json_t *final(const orun *o, json_t *text, const char *reason) {
    json_t *f = head(o, text);
    if (!f) return NULL;
    const fr_gen_stats *s = &o->st;
    double prompt_ms = (s->n_gen > 0 ? s->ttft_ms : s->total_ms) - s->queue_ms;
    double eval_ms = s->n_gen > 0 ? s->total_ms - s->ttft_ms : 0;
    json_t *rest = json_pack("{s:b, s:s, s:I, s:I, s:i, s:I, s:i, s:I}", "done", 1, "done_reason", reason,
                             "total_duration", ns((fr_now_s() - o->rq->t_start) * 1e3), "load_duration",
                             ns(o->load_ms), "prompt_eval_count", (int)s->n_prompt, "prompt_eval_duration",
                             ns(prompt_ms), "eval_count", (int)s->n_gen, "eval_duration", ns(eval_ms));
    if (!rest) {
        json_decref(f);
        return NULL;
    }
    json_object_update(f, rest);
    json_decref(rest);
    return f;
}

/* Ollama says "stop" for an answer that was tool calls. */
static const char *reason_of(json_t *choice) {
    const char *r = json_string_value(json_object_get(choice, "finish_reason"));
    return r && strcmp(r, "tool_calls") != 0 ? r : "stop";
}

/* One call in Ollama's shape, {"function": {"name", "arguments": {...}}},
 * from its name and its arguments' JSON text (an object, as tools.c
 * checked; kept as a string should it not parse). */
static json_t *ollama_call(const char *name, const char *args) {
    json_t *a = args ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL;
    if (!a) a = json_string(args ? args : "");
    return json_pack("{s:{s:s, s:o}}", "function", "name", name ? name : "", "arguments", a);
}

/* OpenAI's message.tool_calls → Ollama's, into message m. */
static void set_calls(json_t *m, json_t *openai_calls) {
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(openai_calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        json_array_append_new(out, ollama_call(json_string_value(json_object_get(fn, "name")),
                                               json_string_value(json_object_get(fn, "arguments"))));
    }
    json_object_set_new(m, "tool_calls", out);
}

/* The choice's text: message.content, delta.content or text; NULL when none. */
static json_t *text_of(json_t *choice) {
    json_t *t = json_object_get(json_object_get(choice, "message"), "content");
    if (!t) t = json_object_get(json_object_get(choice, "delta"), "content");
    if (!t) t = json_object_get(choice, "text");
    return json_is_string(t) ? t : NULL;
}

/* Non-streamed: the chat.completion (or text_completion) as one object. */
static json_t *o_body(void *ud, json_t *completion) {
    orun *o = ud;
    json_t *c = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *t = text_of(c);
    json_t *f = final(o, t ? json_incref(t) : json_string(""), reason_of(c));
    json_t *calls = json_object_get(json_object_get(c, "message"), "tool_calls");
    if (f && o->chat && json_array_size(calls)) set_calls(json_object_get(f, "message"), calls);
    json_decref(completion);
    return f;
}

/* A streamed delta's tool_calls: names first, then arguments (whole, as
 * tools.c sends them); a call whose arguments came is the line to send
 * (NULL: nothing yet). */
static json_t *stream_calls(orun *o, json_t *delta_calls) {
    if (!o->calls && !(o->calls = json_array())) return NULL;
    json_t *ready = NULL, *c;
    size_t i;
    json_array_foreach(delta_calls, i, c) {
        json_int_t k = json_integer_value(json_object_get(c, "index"));
        json_t *fn = json_object_get(c, "function");
        if (k < 0 || k > 1024) continue;
        while (json_array_size(o->calls) <= (size_t)k) json_array_append_new(o->calls, json_object());
        json_t *slot = json_array_get(o->calls, (size_t)k);
        json_t *name = json_object_get(fn, "name");
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (json_is_string(name)) json_object_set(slot, "name", name);
        if (args && *args) {
            if (!ready) ready = json_array();
            json_array_append_new(ready, ollama_call(json_string_value(json_object_get(slot, "name")), args));
        }
    }
    if (!ready) return NULL;
    json_t *line = head(o, json_string(""));
    if (!line) {
        json_decref(ready);
        return NULL;
    }
    json_object_set_new(json_object_get(line, "message"), "tool_calls", ready);
    json_object_set_new(line, "done", json_false());
    return line;
}

/* Streamed: a chunk of text becomes a line {"done": false}; the finish,
 * the last line. */
static json_t *o_chunk(void *ud, json_t *ev) {
    orun *o = ud;
    json_t *c = json_array_get(json_object_get(ev, "choices"), 0), *out = NULL;
    json_t *t = text_of(c);
    json_t *calls = json_object_get(json_object_get(c, "delta"), "tool_calls");
    if (json_is_string(json_object_get(c, "finish_reason"))) {
        out = final(o, json_string(""), reason_of(c));
    } else if (o->chat && json_array_size(calls)) {
        out = stream_calls(o, calls);
    } else if (t && json_string_length(t) > 0) {
        out = head(o, json_incref(t));
        if (out) json_object_set_new(out, "done", json_false());
    }
    json_decref(ev);
    return out;
}

static void o_fin(void *ud) {
    orun *o = ud;
    json_decref(o->calls);
    o->calls = NULL;
}

/* The answer to an empty prompt or message list: load, or unload with
 * keep_alive 0. */
static int load_or_unload(fr_req *rq, orun *o, const char *id, int64_t keep, unsigned caps) {
    const char *reason = "load";
    int rc;
    if (keep == 0) {
        reason = "unload";
        rc = fr_manager_unload(fr__req_manager(rq), id, false);
        if (rc == FR_ECONFLICT) {
            /* in use: it goes when the last request using it ends */
            fr_handle *h;
            if ((rc = fr__models_acquire(rq, id, 0, caps, o->chat ? "chat" : "generation", &h))) return rc;
            fr_manager_release(h);
        } else if (rc) {
            return fr__reply_err(rq, rc, "model");
        }
    } else {
        fr_handle *h;
        double t0 = fr_now_s();
        if ((rc = fr__models_acquire(rq, id, keep, caps, o->chat ? "chat" : "generation", &h))) return rc;
        o->load_ms = (fr_now_s() - t0) * 1e3;
        fr_manager_release(h);
    }
    json_t *r = head(o, json_string(""));
    if (r) {
        json_object_set_new(r, "done", json_true());
        json_object_set_new(r, "done_reason", json_string(reason));
    }
    return fr__reply_json(rq, 200, r);
}

/* messages[i].content and the fields we cannot honour. */
static int parse_message(fr_req *rq, json_t *mi, size_t i, fr_chat_msg *out) {
    char param[48];
    snprintf(param, sizeof param, "messages[%zu]", i);
    const char *role = json_string_value(json_object_get(mi, "role"));
    if (!json_is_object(mi) || !role)
        return fr__reply_error(rq, 400, "invalid_value", param, "%s.role must be a string", param);
    if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
        return fr__reply_error(rq, 400, "invalid_value", param,
                               "%s.role must be system, user, assistant or tool (got '%.32s')", param, role);
    json_t *c = json_object_get(mi, "content"), *img = json_object_get(mi, "images");
    if (c && !json_is_null(c) && !json_is_string(c))
        return fr__reply_error(rq, 400, "invalid_value", param, "%s.content must be a string", param);
    if (json_array_size(img) > 0)
        return fr__reply_error(rq, 400, "invalid_value", param,
                               "%s.images: this model cannot read images (frugal serves text models)", param);
    *out = (fr_chat_msg){.role = role, .content = json_is_string(c) ? json_string_value(c) : ""};
    /* an assistant's tool_calls ({"function": {"name", "arguments": {...}}},
     * as tools.c reads OpenAI's), a tool message's tool_call_id if any
     * (Ollama's tool messages name no call) */
    if (!strcmp(role, "assistant") || json_is_string(json_object_get(mi, "tool_call_id")))
        return fr__tools_message(rq, mi, i, out);
    return 0;
}

/* format: "json" (any JSON object, as response_format json_object) or a
 * JSON schema object → q->grammar. */
static int parse_format(fr_req *rq, json_t *fmt, fr_gen_req *q) {
    if (!fmt || json_is_null(fmt) || (json_is_string(fmt) && json_string_length(fmt) == 0)) return 0;
    if (json_is_object(fmt)) return fr__schema_grammar(rq, fmt, "format", &q->grammar);
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "json") != 0)
        return fr__reply_error(rq, 400, "invalid_value", "format",
                               "format must be \"json\" or a JSON schema object");
    json_t *any = json_pack("{s:s}", "type", "object");
    if (!any) return FR_ENOMEM;
    int rc = fr__schema_grammar(rq, any, "format", &q->grammar);
    json_decref(any);
    return rc;
}

/* options → the sampler, through gen.c's reader of OpenAI's fields (same
 * names and ranges); num_predict → max_tokens; *num_ctx when given. */
static int parse_options(fr_req *rq, json_t *body, fr_gen_req *q, int32_t *num_ctx) {
    json_t *opts = NULL;
    fr_body b = {.rq = rq, .obj = body};
    int rc = fr__body_object(&b, "options", "an object of model parameters", &opts);
    if (rc) return rc;
    fr_body ob = {.rq = rq, .obj = opts, .prefix = "options"};
    if ((rc = fr__gen_parse_options(&ob, true, q))) return rc;
    long long np = 0;
    bool have;
    if ((rc = fr__body_int(&ob, "num_predict", -2, 1 << 20, &np, &have))) return rc;
    q->max_tokens = have ? (np > 0 ? (int32_t)np : 0) : q->max_tokens;
    *num_ctx = 0;
    return fr__body_i32(&ob, "num_ctx", 0, INT32_MAX, num_ctx, NULL);
}

/* A string field that may be empty (as absent: *out stays NULL). */
static int opt_str(const fr_body *b, const char *key, const char **out) {
    json_t *v = json_object_get(b->obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return fr__reply_error(b->rq, 400, "invalid_value", key, "%s must be a string", key);
    if (json_string_length(v)) *out = json_string_value(v);
    return 0;
}

static int generate(fr_req *rq, bool chat) {
    fr_body b;
    const char *name = NULL;
    fr_model_info m;
    int rc;
    if ((rc = fr__body_need(rq, &b)) || (rc = model_field(&b, &name))) return rc;
    fr__req_set_model(rq, name);
    orun *o = fr__req_alloc(rq, sizeof *o);
    fr_gen_req *q = fr__req_alloc(rq, sizeof *q);
    if (!o || !q) return FR_ENOMEM;
    memset(o, 0, sizeof *o);
    memset(q, 0, sizeof *q);
    o->rq = rq;
    o->name = name;
    o->chat = chat;

    /* every field checked before anything runs */
    int32_t num_ctx = 0;
    bool stream = true, raw = false;
    int64_t keep = FR_KEEP_ALIVE_INHERIT;
    q->kind = FR_GEN_CHAT;
    if ((rc = parse_options(rq, b.obj, q, &num_ctx)) || (rc = fr__body_bool(&b, "stream", &stream)) ||
        (rc = keep_alive(&b, &keep)) || (rc = parse_format(rq, json_object_get(b.obj, "format"), q)))
        return rc;
    size_t n_msgs = 0;
    fr_chat_msg *msgs = NULL;
    const char *prompt = NULL, *system = NULL, *suffix = NULL;
    if (chat) {
        json_t *ms = json_object_get(b.obj, "messages");
        if (ms && !json_is_null(ms) && !json_is_array(ms))
            return fr__reply_error(rq, 400, "invalid_value", "messages", "messages must be an array");
        n_msgs = json_array_size(ms);
        if (n_msgs > MAX_MESSAGES)
            return fr__reply_error(rq, 400, "invalid_value", "messages", "messages has %zu entries, at most %d",
                                   n_msgs, MAX_MESSAGES);
        if (n_msgs && !(msgs = fr__req_alloc(rq, n_msgs * sizeof *msgs))) return FR_ENOMEM;
        for (size_t i = 0; i < n_msgs; i++)
            if ((rc = parse_message(rq, json_array_get(ms, i), i, &msgs[i]))) return rc;
        if ((rc = fr__tools_parse(&b, q))) return rc;      /* tools (tool_choice: "auto") */
    } else {
        json_t *img = json_object_get(b.obj, "images");
        if ((rc = opt_str(&b, "prompt", &prompt)) || (rc = opt_str(&b, "system", &system)) ||
            (rc = opt_str(&b, "suffix", &suffix)) || (rc = fr__body_bool(&b, "raw", &raw)))
            return rc;
        if (json_array_size(img) > 0)
            return fr__reply_error(rq, 400, "invalid_value", "images",
                                   "images: this model cannot read images (frugal serves text models)");
        if (suffix)
            return fr__reply_error(rq, 400, "unsupported", "suffix",
                                   "suffix: fill-in-the-middle is not supported");
        if (json_object_get(b.obj, "template"))
            FR_DEBUG("%s: /api/generate: template ignored (the model's own chat template is used)", rq->id);
    }
    if ((rc = resolve(rq, name, &m))) return rc;
    unsigned caps = chat ? FR_CAP_CHAT : FR_CAP_CHAT | FR_CAP_COMPLETION;
    if (chat ? n_msgs == 0 : !prompt) return load_or_unload(rq, o, m.id, keep, caps);

    fr_handle *h;
    double t0 = fr_now_s();
    if ((rc = fr__models_acquire(rq, m.id, keep, caps, chat ? "chat" : "generation", &h))) return rc;
    o->load_ms = (fr_now_s() - t0) * 1e3;
    const fr_loaded_model *lm = fr_handle_obj(h);
    int32_t n_ctx = fr_sched_n_ctx(lm->sched);
    if (num_ctx > 0 && num_ctx != n_ctx)
        FR_INFO("%s: options.num_ctx %d ignored: model '%s' is loaded with a context of %d tokens (set by "
                "--ctx or its [model] section)", rq->id, (int)num_ctx, m.id, (int)n_ctx);
    if (!chat) {
        /* the model's template with system and prompt, or the prompt as it is */
        if (!raw && (fr_handle_caps(h) & FR_CAP_CHAT)) {
            if (!(msgs = fr__req_alloc(rq, 2 * sizeof *msgs))) {
                fr_manager_release(h);
                return FR_ENOMEM;
            }
            if (system) msgs[n_msgs++] = (fr_chat_msg){.role = "system", .content = system};
            msgs[n_msgs++] = (fr_chat_msg){.role = "user", .content = prompt};
        } else {
            q->kind = FR_GEN_TEXT;
            q->prompt = prompt;
        }
    }
    char *id = fr__req_strdup(rq, m.id);
    if (!id) {
        fr_manager_release(h);
        return FR_ENOMEM;
    }
    q->model = id;
    q->msgs = msgs;
    q->n_msgs = n_msgs;
    q->stream = stream;
    q->keep_alive_ms = keep;
    o->hk = (fr_gen_hooks){.ud = o, .body = o_body, .chunk = o_chunk, .fin = o_fin, .ndjson = true,
                           .stats = &o->st};
    rc = fr__gen_run(rq, q, h, &o->hk);
    fr__req_set_model(rq, name);
    return rc;
}

int fr__h_ollama_generate(fr_req *rq) { return generate(rq, false); }
int fr__h_ollama_chat(fr_req *rq) { return generate(rq, true); }

/* ---- POST /api/embed and /api/embeddings ---- */

static int embed(fr_req *rq, bool legacy) {
    fr_body b;
    const char *name = NULL;
    fr_model_info m;
    int64_t keep = FR_KEEP_ALIVE_INHERIT;
    int rc;
    if ((rc = fr__body_need(rq, &b)) || (rc = model_field(&b, &name)) || (rc = keep_alive(&b, &keep))) return rc;
    fr__req_set_model(rq, name);
    if ((rc = resolve(rq, name, &m))) return rc;
    char *id = fr__req_strdup(rq, m.id);
    if (!id) return FR_ENOMEM;
    return fr__embeddings_ollama(rq, id, name, legacy, keep);
}

int fr__h_ollama_embed(fr_req *rq) { return embed(rq, false); }
int fr__h_ollama_embeddings(fr_req *rq) { return embed(rq, true); }
