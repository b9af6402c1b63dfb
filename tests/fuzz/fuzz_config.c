/*
 * fuzz_config.c — libFuzzer target for `frugal serve`'s INI parser and the
 * operator-value parsers: parse the input as an INI file (any bytes: NULs,
 * long lines, broken sections), check the result's invariants, free it;
 * then feed each line of the input to the size, duration, boolean, integer
 * and percentage parsers.  A failure must come with a detail; a success
 * must leave a consistent config; nothing may leak (the replay build runs
 * under ASan in make test).
 */
#include "cli/serve_config.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const fr_serve_config *c) {
    if (!c->host) __builtin_trap();
    for (size_t i = 0; i < c->n_api_keys; i++)
        if (!c->api_keys[i] || !c->api_keys[i][0]) __builtin_trap();
    for (size_t i = 0; i < c->n_models; i++) {
        const fr_model_cfg *m = &c->models[i];
        if (!m->id || !m->id[0] || !m->path) __builtin_trap();
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->id, c->models[j].id)) __builtin_trap();
    }
    if (c->port < 0 || c->port > 65535) __builtin_trap();
}

static void values(const char *line) {
    uint64_t u;
    double d, pct;
    int64_t i;
    bool b;
    int rc;
#define ONE(call)                                                    \
    do {                                                             \
        fr_errclear();                                               \
        rc = (call);                                                 \
        if (rc && (rc != FR_EINVAL || !fr_errdetail()[0])) __builtin_trap(); \
    } while (0)
    ONE(fr_parse_size("v", line, 0, &u));
    ONE(fr_parse_size("v", line, 1ull << 33, &u));
    ONE(fr_parse_size_or_pct("v", line, &u, &pct));
    if (!rc && u && pct) __builtin_trap();
    ONE(fr_parse_duration_ms("v", line, &i));
    if (!rc && i < -1) __builtin_trap();
    ONE(fr_parse_bool("v", line, &b));
    ONE(fr_parse_int("v", line, -1000, 1000, &i));
    if (!rc && (i < -1000 || i > 1000)) __builtin_trap();
    ONE(fr_parse_percent("v", line, 1, 100, &d));
    if (!rc && (d < 1 || d > 100)) __builtin_trap();
#undef ONE
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fr_serve_config c;
    if (fr_serve_config_init(&c)) return 0;
    fr_errclear();
    int rc = fr_serve_config_ini(&c, (const char *)data, size, "fuzz.ini", "/base");
    if (rc && !fr_errdetail()[0]) __builtin_trap();
    if (!rc) check_config(&c);
    fr_serve_config_deinit(&c);

    /* each line (up to 255 bytes) through the value parsers */
    char line[256];
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
        memcpy(line, data + pos, k);
        line[k] = 0;
        values(line);
        pos += n + 1;
    }
    return 0;
}
