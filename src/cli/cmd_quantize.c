/*
 * cmd_quantize.c — `frugal quantize [--output-type T] [--embd-type T] [-t N]
 * IN OUT TYPE`: rewrite a F32/F16/BF16 model with quantized weights, as
 * llama-quantize does (engine/quantize_model.h).  Prints one line per
 * tensor (name, from → to, bytes) and a total; errors are one line, exit 1;
 * usage errors exit 2.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "engine/quantize_model.h"
#include "kernels/quantize.h"
#include "kernels/types.h"

typedef struct totals {
    size_t in, out;
    int n;
} totals;

static void print_tensor(void *ud, const char *name, int from, int to, size_t bytes_in,
                         size_t bytes_out) {
    totals *t = ud;
    t->in += bytes_in;
    t->out += bytes_out;
    t->n++;
    printf("%-40s %-5s -> %-5s %12zu bytes\n", name, fr_type_name(from), fr_type_name(to),
           bytes_out);
    fflush(stdout);
}

static const char usage_line[] =
    "usage: frugal quantize [--output-type T] [--embd-type T] [-t N] IN OUT TYPE\n"
    "  TYPE: q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k q4_k_m q5_k_m f16 bf16 f32\n";

static bool parse_type_opt(const char *opt, const char *v, int *out) {
    if (!v) {
        fr_cli_usage("%s needs a type", opt);
        return false;
    }
    int t = fr_type_from_name(v);
    fr_quantize_params probe;
    /* accept the ggml type names the quantizers write (q6_k, f16, ...) */
    if (t < 0 && fr_quantize_params_init(&probe, v) == 0 && probe.mix == FR_QMIX_NONE)
        t = probe.type;
    if (t < 0 || !fr_quantize_supported(t)) {
        fr_cli_usage("%s: cannot write type '%s'", opt, v);
        return false;
    }
    *out = t;
    return true;
}

int fr_cli_quantize(int argc, char **argv) {
    const char *pos[3];
    int npos = 0, output_type = -1, embd_type = -1;
    long threads = fr_physical_cores();
    if (threads < 1) threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_line, stdout);
            return 0;
        } else if (!strcmp(a, "--output-type")) {
            if (!parse_type_opt(a, v, &output_type)) return 2;
            i++;
        } else if (!strcmp(a, "--embd-type")) {
            if (!parse_type_opt(a, v, &embd_type)) return 2;
            i++;
        } else if (!strcmp(a, "-t")) {
            if (!fr_cli_int(a, v, 1, 512, &threads)) return 2;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return fr_cli_usage("quantize: unknown option '%s' (try frugal quantize --help)", a);
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            return fr_cli_usage("quantize: too many arguments ('%s')", a);
        }
    }
    if (npos != 3) return fr_cli_usage("quantize: need IN OUT TYPE (try frugal quantize --help)");

    fr_quantize_params p;
    if (fr_quantize_params_init(&p, pos[2]))
        return fr_cli_usage("quantize: unknown TYPE '%s' (one of q8_0 q4_0 q4_1 q5_0 "
                            "q5_1 q4_k q5_k q6_k q4_k_m q5_k_m f16 bf16 f32)", pos[2]);
    totals t = {0, 0, 0};
    p.output_type = output_type;
    p.embd_type = embd_type;
    p.n_threads = (int)threads;
    p.progress = print_tensor;
    p.progress_ud = &t;

    double t0 = fr_now_s();
    int rc = fr_quantize_model(pos[0], pos[1], &p);
    if (rc) return fr_cli_fail(rc, "quantize");
    printf("total: %d tensors, %.2f MiB -> %.2f MiB (file_type %u) in %.2f s: %s\n", t.n,
           (double)t.in / 1048576.0, (double)t.out / 1048576.0, fr_quantize_ftype(&p),
           fr_now_s() - t0, pos[1]);
    return 0;
}
