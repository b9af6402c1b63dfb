/*
 * cmd_inspect.c — `frugal inspect FILE`: the metadata (long arrays abbreviated)
 * and the tensor table of a GGUF file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "cli/cli.h"
#include "engine/gguf.h"
#include "kernels/types.h"

static const char *vtype_name(int t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "str", "arr", "u64", "i64", "f64"};
    return t >= 0 && t < FR_GGUF_VTYPE_COUNT ? names[t] : "?";
}

int fr_cli_inspect(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') return fr_cli_usage("usage: frugal inspect FILE");
    fr_gguf *g = NULL;
    int rc = fr_gguf_open(argv[1], &g);
    if (rc) return fr_cli_fail(rc, argv[1]);

    printf("file: %s\nversion: %u\nsize: %zu bytes\nalignment: %u\ndata offset: %zu\n",
           argv[1], fr_gguf_version(g), fr_gguf_file_size(g), fr_gguf_alignment(g),
           fr_gguf_data_offset(g));
    int64_t n_kv = fr_gguf_n_kv(g);
    printf("\nmetadata (%" PRId64 " keys):\n", n_kv);
    static char val[4096];
    for (int64_t i = 0; i < n_kv; i++) {
        fr_gguf_str k = fr_gguf_key(g, i);
        fr_gguf_format_value(g, i, val, sizeof val, 8);
        printf("  %-44.*s %-4s %s\n", (int)k.len, k.s, vtype_name(fr_gguf_kv_type(g, i)), val);
    }
    int64_t n_t = fr_gguf_n_tensors(g);
    printf("\ntensors (%" PRId64 "):\n  %-36s %-6s %-24s %12s %12s\n", n_t, "name", "type",
           "shape", "bytes", "offset");
    uint64_t total = 0;
    for (int64_t i = 0; i < n_t; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        char shape[96];
        int o = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->n_dims && o < (int)sizeof shape; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
        if (o < (int)sizeof shape) snprintf(shape + o, sizeof shape - (size_t)o, "]");
        printf("  %-36s %-6s %-24s %12zu %12" PRIu64 "\n", t->name, fr_type_name(t->type), shape,
               t->nbytes, t->offset);
        total += t->nbytes;
    }
    printf("\ntensor bytes: %" PRIu64 " (%.2f MiB)\n", total, (double)total / (1024.0 * 1024.0));
    fr_gguf_close(g);
    return 0;
}
