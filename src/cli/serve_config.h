/*
 * serve_config.h — the configuration of `frugal serve`, from five sources
 * in order of precedence: command-line flags > FRUGAL_* environment
 * variables > the INI file (--config F or FRUGAL_CONFIG) > the board
 * profile (--profile NAME, FRUGAL_PROFILE or [server] profile = NAME;
 * `auto` reads the board) > defaults.  --print-config prints every
 * setting with its source.
 *
 * Every setting is one row of the option table in serve_config.c, which
 * gives its flag, variable, INI section and key, type and range; the
 * three sources go through the same parsers (base/parse.h).  A bad value,
 * an unknown flag, key or section stops start-up with one error (the
 * thread's fr_errdetail) naming the place:
 *
 *   frugal.ini:7: [server] port: bad integer 'http' (want an integer from 0 to 65535)
 *   --keep-alive: bad duration '5 minutes' (want a duration like ...)
 *   FRUGAL_PORT: 70000 is out of range (want an integer from 0 to 65535)
 *
 * The INI file has [server], [memory], [search] and one [model "name"]
 * section per model (see serve_config.c for the keys).  Relative paths in it are
 * taken from the file's folder.
 *
 * Nothing here is thread-safe; it runs once, at start-up.
 */
#ifndef FR_CLI_SERVE_CONFIG_H
#define FR_CLI_SERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/sysinfo.h"
#include "manager/manager.h"

typedef struct fr_serve_config {
    char *models_dir;           /* --models: NULL = no directory */
    char *host;                 /* --host */
    int64_t port;               /* --port; 0 = any free port */
    char **api_keys;            /* --api-key (repeatable) plus the key file's lines */
    size_t n_api_keys;
    char *api_key_file;         /* --api-key-file */
    bool api_key_flag;          /* a key was given with --api-key (so ps shows it) */
    int64_t threads;            /* --threads; 0 = physical cores (fr_serve_config_finish) */
    uint64_t budget_bytes;      /* --memory-budget in bytes, or */
    double budget_pct;          /* as a percentage; both 0 = the manager's default (75%) */
    int64_t max_loaded;         /* --max-loaded; 0 = no count limit */
    int64_t keep_alive_ms;      /* --keep-alive; -1 never, 0 at once */
    int64_t parallel;           /* --parallel: slots per model */
    int64_t queue;              /* --queue: waiting requests per model */
    int64_t ctx;                /* --ctx: context per slot */
    uint64_t max_body;          /* --max-body in bytes */
    double mem_warning, mem_critical, mem_emergency;   /* percent */
    int64_t drain_timeout_ms;   /* --drain-timeout; -1 = wait forever */
    int64_t conn_timeout_ms;    /* --conn-timeout: body deadline and idle timeout */
    int64_t header_timeout_ms;  /* --header-timeout */
    int64_t max_conns;          /* --max-conns */
    int64_t max_conns_per_ip;   /* --max-conns-per-ip */
    char *cors_origin;          /* --cors-origin: comma-separated; NULL = none */
    char *allowed_host;         /* --allowed-host: comma-separated; NULL = none */
    int64_t request_timeout_ms; /* --request-timeout: a generation's deadline; -1 none */
    int64_t batch_tokens;       /* --batch-tokens: tokens per encoder forward pass */
    uint64_t embed_cache;       /* --embed-cache: bytes of the vector cache */
    char *data_dir;             /* --data: the document index's directory (./data) */
    uint64_t search_cache;      /* --search-cache: bytes of int8 vectors in memory; 0 = 256M */
    bool data_sync_full;        /* --data-sync full: SQLite synchronous=FULL (else NORMAL) */
    int64_t log_level;          /* FR_LOG_*: --log-level (FRUGAL_LOG) */
    char *config_path;          /* the INI file read, or NULL */
    char *profile;              /* --profile: a board profile's name, "auto", or NULL */
    char profile_used[32];      /* the profile applied ("auto" resolved), "" = none */
    char board[200];            /* what auto read: model, CPUs, memory */
    bool print_config;          /* --print-config */
    uint8_t src[64];            /* per option: SRC_* (serve_config.c) */
    int32_t src_line[64];       /* per option: the INI line that set it */

    fr_model_cfg *models;       /* [model "name"] sections; strings owned */
    size_t n_models;

    /* which source set the key list (so that a higher source replaces it) */
    int keys_source;
    /* the INI file's [section] key pairs seen (duplicates are errors) */
    uint64_t ini_seen;
} fr_serve_config;

/* Defaults.  FR_ENOMEM. */
int  fr_serve_config_init(fr_serve_config *c);
/* Free every string and array.  Safe on a zeroed or half-built config. */
void fr_serve_config_deinit(fr_serve_config *c);

/* Parse INI text (len bytes, need not be NUL-terminated) into c.  name is
 * the file name used in errors; base_dir, if not NULL, is prepended to
 * relative paths.  Applies every key (so call it before the environment
 * and the flags).  FR_EINVAL with the detail naming name:line, section and
 * key; FR_ENOMEM.  Touches no file: the fuzz target calls it on any
 * bytes. */
int fr_serve_config_ini(fr_serve_config *c, const char *text, size_t len, const char *name,
                        const char *base_dir);

/* Apply FRUGAL_* variables through getenv_fn (getenv, or a test's).
 * Empty values count as unset.  FR_EINVAL naming the variable; FR_ENOMEM. */
int fr_serve_config_env(fr_serve_config *c, const char *(*getenv_fn)(const char *name));

/* Apply flags (argv[0] is the subcommand).  --config is skipped here (see
 * fr_serve_config_path).  *help is set when -h/--help was given.
 * FR_EINVAL naming the flag; FR_ENOMEM. */
int fr_serve_config_args(fr_serve_config *c, int argc, char **argv, bool *help);

/* The INI file to read: --config F (or --config=F), else FRUGAL_CONFIG,
 * else NULL.  Points into argv or the environment. */
const char *fr_serve_config_path(int argc, char **argv, const char *(*getenv_fn)(const char *name));

/* Read and apply the INI file at path (relative paths inside it are taken
 * from its folder).  FR_EINVAL/FR_EIO naming it; FR_ENOMEM. */
int fr_serve_config_file(fr_serve_config *c, const char *path);

/* After all sources: read the API key file (one key per line; blank lines
 * and lines starting with '#' are skipped; a file with no key is an
 * error), fill threads, check that warning < critical < emergency.
 * FR_EINVAL/FR_EIO with a detail; FR_ENOMEM. */
int fr_serve_config_finish(fr_serve_config *c);

/* The profile `auto` picks for a board (base/sysinfo.h fr_board_read): a
 * Pi 5 / CM5 by memory (pi5-4g up to 6 GiB, pi5-8g up to 12, else
 * pi5-16g), a CM4 (cm4-4g, or pi4-8g above 6 GiB), a Pi 4 / 400 (pi4-4g,
 * pi4-8g), anything else vps-2c with at most 2 CPUs, else x86-16g. */
const char *fr_serve_profile_auto(const fr_board *b);

/* Every setting's effective value and source ("default", "profile NAME",
 * "INI file:line", "env VAR", "flag --x"), one per line (after finish).
 * API keys are counted, not printed. */
void fr_serve_config_print(const fr_serve_config *c, FILE *f);

/* Every flag with its variable, INI key and default, for --help. */
void fr_serve_config_usage(FILE *f);

#endif
