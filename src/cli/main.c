/*
 * main.c — `frugal <command>`: dispatch to the subcommands and the shared
 * helpers (argument parsing, error lines).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"serve", fr_cli_serve, "serve [--models DIR] [--host H] [--port N] [--config F] ... : HTTP API (serve --help)"},
    {"index", fr_cli_index, "index add|search|rm|ls|check [--data DIR] ... : document search (index --help)"},
    {"run", fr_cli_run, "run -m FILE -p TEXT [-n N] [--chat] [sampling] : generate text"},
    {"tokenize", fr_cli_tokenize, "tokenize -m FILE [--add-special] [--parse-special] (TEXT | --file F)"},
    {"inspect", fr_cli_inspect, "inspect FILE : metadata and tensor table"},
    {"bench", fr_cli_bench, "bench -m FILE [-p 512] [-n 128] [-t N] [-r 3] [--json] | bench --membw : speed"},
    {"embed", fr_cli_embed, "embed -m FILE [-t N] [--pooling P] [--no-normalize] TEXT... : one JSON vector per line"},
    {"rerank", fr_cli_rerank, "rerank -m FILE --query Q [-t N] DOC... : 'index score' per line, best first"},
    {"bench-search", fr_cli_bench_search, "bench-search [--chunks 100000] [--dim 384] [--queries 200] [--data DIR] [--keep] [--json] : index speed"},
    {"bench-embed", fr_cli_bench_embed, "bench-embed -m FILE [--batch 32] [--words 16] [-t N] [-r 3] [--json] : encoder speed"},
    {"quantize", fr_cli_quantize, "quantize [--output-type T] [--embd-type T] [-t N] IN OUT TYPE : quantize a model"},
    {"mkmodel", fr_cli_mkmodel, "mkmodel --arch A --shape S --type T [--vocab FILE] OUT : random-weight model"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: frugal <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "frugal: unknown command '%s' (try frugal --help)\n", argv[1]);
    return 2;
}

int fr_cli_fail(int code, const char *what) {
    const char *d = fr_errdetail();
    if (d && *d) fprintf(stderr, "frugal: %s: %s\n", what, d);
    else fprintf(stderr, "frugal: %s: %s\n", what, fr_strerror(code));
    return 1;
}

int fr_cli_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("frugal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

bool fr_cli_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s) { fr_cli_usage("%s needs a value", opt); return false; }
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < lo || v > hi) {
        fr_cli_usage("%s must be an integer in [%ld, %ld] (got '%s')", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool fr_cli_float(const char *opt, const char *s, float *out) {
    char *end;
    if (!s) { fr_cli_usage("%s needs a value", opt); return false; }
    float v = strtof(s, &end);
    if (*s == 0 || *end || v != v) {
        fr_cli_usage("%s must be a number (got '%s')", opt, s);
        return false;
    }
    *out = v;
    return true;
}

int fr_cli_read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return fr_errf(FR_ENOENT, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            char *nb = fr_realloc(buf, nc);
            if (!nb) { fr_free(buf); fclose(f); return FR_ENOMEM; }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { fr_free(buf); return fr_errf(FR_EIO, "cannot read %s", path); }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}
