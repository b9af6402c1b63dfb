/*
 * cmd_tokenize.c — `frugal tokenize`: print the token ids of a text, using only
 * the tokenizer of a GGUF file (vocab-only files work).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "engine/gguf.h"
#include "engine/vocab.h"

int fr_cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool add_special = false, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return fr_cli_usage("%s needs a file", a);
            model = argv[++i];
        } else if (!strcmp(a, "--file")) {
            if (i + 1 >= argc) return fr_cli_usage("%s needs a file", a);
            file = argv[++i];
        } else if (!strcmp(a, "--add-special")) add_special = true;
        else if (!strcmp(a, "--parse-special")) parse_special = true;
        else if (a[0] == '-' && a[1] && !text) return fr_cli_usage("tokenize: unknown option '%s'", a);
        else if (!text) text = a;
        else return fr_cli_usage("tokenize: one TEXT only (got '%s' too)", a);
    }
    if (!model) return fr_cli_usage("tokenize: -m FILE is required");
    if (!text == !file) return fr_cli_usage("tokenize: give TEXT or --file F (one of them)");

    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    fr_gguf *g = NULL;
    fr_vocab *v = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc, code = 1;
    const char *stage = file;
    if (file && (rc = fr_cli_read_file(file, &buf, &len))) goto fail;
    stage = model;
    if ((rc = fr_gguf_open(model, &g)) || (rc = fr_vocab_load(g, &v))) goto fail;
    stage = "tokenize";
    if ((rc = fr_tokenize(v, file ? buf : text, len, add_special, parse_special, &ids, &n))) goto fail;
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    code = 0;
    goto done;
fail:
    code = fr_cli_fail(rc, stage);
done:
    fr_free(ids);
    fr_vocab_destroy(v);
    fr_gguf_close(g);
    fr_free(buf);
    return code;
}
