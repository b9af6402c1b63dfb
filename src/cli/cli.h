/*
 * cli.h — what the frugal subcommands share: argument helpers and the
 * one-line error report.  Each subcommand lives in cmd_<name>.c (so that
 * cmd_embed.c and cmd_index.c do not read as another layer's file);
 * main.c dispatches, serve_config.c reads `frugal serve`'s settings.
 */
#ifndef FR_CLI_CLI_H
#define FR_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Each subcommand: argv[0] is the subcommand name.  Returns the exit code. */
int fr_cli_run(int argc, char **argv);
int fr_cli_tokenize(int argc, char **argv);
int fr_cli_inspect(int argc, char **argv);
int fr_cli_mkmodel(int argc, char **argv);
int fr_cli_bench(int argc, char **argv);
int fr_cli_bench_embed(int argc, char **argv);
int fr_cli_bench_search(int argc, char **argv);
int fr_cli_embed(int argc, char **argv);
int fr_cli_rerank(int argc, char **argv);
int fr_cli_quantize(int argc, char **argv);
int fr_cli_serve(int argc, char **argv);
int fr_cli_index(int argc, char **argv);

/* Print "frugal: <what>: <detail or message of code>" on stderr; returns 1. */
int fr_cli_fail(int code, const char *what);
/* Print "frugal: <formatted>" on stderr; returns 2 (usage errors). */
int fr_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse helpers: return false (after printing a usage error) on bad input. */
bool fr_cli_int(const char *opt, const char *s, long lo, long hi, long *out);
bool fr_cli_float(const char *opt, const char *s, float *out);

/* The models of `frugal serve` (cmd_serve.c), for the commands that need them
 * too: the compute pool, what GGUF models share (*env must outlive
 * the manager) and the manager on c's models directory and [model]
 * sections.  fr_manager_create's errors.  Stop with fr_cli_models_stop
 * (safe on NULLs). */
struct fr_serve_config;
struct fr_compute;
struct fr_gguf_env;
struct fr_manager;
int  fr_cli_models_start(const struct fr_serve_config *c, struct fr_compute **compute,
                         struct fr_gguf_env *env, struct fr_manager **manager);
void fr_cli_models_stop(struct fr_compute **compute, struct fr_manager **manager);

/* Read a whole file into a fr_malloc'd buffer (NUL-terminated; *len = bytes). */
int fr_cli_read_file(const char *path, char **data, size_t *len);

#endif
