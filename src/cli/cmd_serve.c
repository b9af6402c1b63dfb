/*
 * cmd_serve.c — `frugal serve`: read the configuration (serve_config.h), start
 * the models and the HTTP server, then wait for signals:
 *
 *   SIGTERM, SIGINT  drain (--drain-timeout), stop, exit 0;
 *   SIGHUP           rescan the models directory (serve_rescan).
 *
 * The signals are blocked in every thread before any thread starts (the
 * server's threads inherit the mask) and taken by the main thread with
 * sigwait, so no handler runs in signal context.
 *
 * Start-up errors of the configuration (the data directory of the
 * document index among them) print one line and exit 2; errors
 * starting the server (address in use) print one line and exit 1.
 *
 * The line "frugal: listening on http://HOST:PORT" goes to stderr once the
 * socket is bound (with the real port when --port 0 chose one); scripts
 * and tests wait for it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "cli/serve_config.h"
#include "manager/loader_gguf.h"
#include "manager/manager.h"
#include "sched/sched.h"
#include "server/server.h"

typedef struct serve_state {
    fr_serve_config cfg;
    fr_compute *compute;        /* the one compute pool */
    fr_gguf_env env;            /* what every GGUF model shares */
    fr_manager *manager;
    fr_server_search *search;   /* the document index (opened at its first use) */
    fr_server *server;
} serve_state;

static const char *env_get(const char *name) { return getenv(name); }

/* The manager's configuration from ours. */
static void manager_config(const fr_serve_config *c, fr_manager_config *mc) {
    memset(mc, 0, sizeof *mc);
    mc->models_dir = c->models_dir;
    mc->models = c->models;
    mc->n_models = c->n_models;
    mc->defaults.n_ctx = (int32_t)c->ctx;
    mc->defaults.parallel = (int32_t)c->parallel;
    mc->defaults.keep_alive_ms = c->keep_alive_ms;
    mc->defaults.threads = (int32_t)c->threads;
    /* a percentage of what the process may use: min(RAM, cgroup limit) */
    mc->budget_bytes = c->budget_pct > 0 ? (uint64_t)((double)fr_mem_limit() * c->budget_pct / 100.0)
                                         : c->budget_bytes;
    mc->max_loaded = (int32_t)c->max_loaded;
    mc->mem_warning = c->mem_warning;
    mc->mem_critical = c->mem_critical;
    mc->mem_emergency = c->mem_emergency;
}

/* Start the models: the compute pool and the manager (which scans the
 * directory and loads the preloads).  Shared with `frugal index` (cli.h). */
int fr_cli_models_start(const fr_serve_config *c, fr_compute **compute, fr_gguf_env *env,
                        fr_manager **manager) {
    fr_manager_config mc;
    manager_config(c, &mc);
    if (!c->models_dir && !c->n_models)
        FR_INFO("no models directory (--models) and no [model] sections: no models are offered");
    int rc = fr_compute_create((int)c->threads, compute);
    if (rc) return rc;
    *env = (fr_gguf_env){.compute = *compute, .n_ctx = (int32_t)c->ctx,
                        .parallel = (int32_t)c->parallel, .queue = (int32_t)c->queue,
                        .batch_tokens = (int32_t)c->batch_tokens};
    mc.loader = fr_gguf_loader(env);
    mc.compute = *compute;
    FR_DEBUG("models: dir %s, %zu from the INI file, budget %llu bytes, max loaded %d, %lld threads",
             mc.models_dir ? mc.models_dir : "(none)", mc.n_models, (unsigned long long)mc.budget_bytes,
             (int)mc.max_loaded, (long long)c->threads);
    return fr_manager_create(&mc, manager);
}

void fr_cli_models_stop(fr_compute **compute, fr_manager **manager) {
    fr_manager_destroy(*manager);
    *manager = NULL;
    fr_compute_destroy(*compute);
    *compute = NULL;
}

static int start_models(serve_state *st) {
    return fr_cli_models_start(&st->cfg, &st->compute, &st->env, &st->manager);
}

static void stop_models(serve_state *st) { fr_cli_models_stop(&st->compute, &st->manager); }

/* SIGHUP: look for new or vanished model files. */
static int serve_rescan(serve_state *st) {
    return st->manager ? fr_manager_rescan(st->manager) : 0;
}

/* Drain's cancel hook: requests outlived --drain-timeout. */
static void serve_cancel(void *ud) {
    serve_state *st = ud;
    FR_WARN("drain timeout: cancelling the requests still running");
    if (st->manager) fr_manager_cancel_all(st->manager);
}

static int check_models_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return fr_errf(FR_EINVAL, "--models %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return fr_errf(FR_EINVAL, "--models %s: not a directory", dir);
    return 0;
}

static int config_error(serve_state *st, int rc) {
    const char *d = fr_errdetail();
    fprintf(stderr, "frugal: %s\n", d && *d ? d : fr_strerror(rc));
    fr_serve_config_deinit(&st->cfg);
    return 2;
}

int fr_cli_serve(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fr_serve_config_usage(stdout);
            return 0;
        }
    serve_state st = {0};
    fr_serve_config *c = &st.cfg;
    int rc = fr_serve_config_init(c);
    if (rc) return fr_cli_fail(rc, "serve");
    const char *ini = fr_serve_config_path(argc, argv, env_get);
    bool help = false;
    if (ini && (rc = fr_serve_config_file(c, ini))) return config_error(&st, rc);
    if ((rc = fr_serve_config_env(c, env_get))) return config_error(&st, rc);
    if ((rc = fr_serve_config_args(c, argc, argv, &help))) return config_error(&st, rc);
    if ((rc = fr_serve_config_finish(c))) return config_error(&st, rc);
    if (c->print_config) {
        fr_serve_config_print(c, stdout);
        fr_serve_config_deinit(c);
        return 0;
    }
    if (c->models_dir && (rc = check_models_dir(c->models_dir))) return config_error(&st, rc);
    /* The data directory: a bad one (or an existing index that cannot be
     * opened) is a configuration error, exit 2 with one line, before the
     * models start and log.  The check opens an existing index without
     * models and closes it; the server's own is opened below. */
    if ((rc = fr_server_search_create(c->data_dir, (size_t)c->search_cache, c->data_sync_full, NULL, &st.search)))
        return config_error(&st, rc);
    fr_server_search_destroy(st.search);
    st.search = NULL;
    fr_log_set_level((int)c->log_level);

    /* Before any thread exists: the signals are taken by sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int exit_code = 1;
    if ((rc = start_models(&st))) {
        fr_cli_fail(rc, "models");
        goto out;
    }
    /* A missing data directory is made at the first write, so servers
     * that never index leave nothing behind. */
    if ((rc = fr_server_search_create(c->data_dir, (size_t)c->search_cache, c->data_sync_full, st.manager,
                                      &st.search))) {
        fr_cli_fail(rc, "data");
        goto out;
    }
    fr_server_config sc = {
        .host = c->host,
        .port = (int)c->port,
        .api_keys = (const char *const *)c->api_keys,
        .n_api_keys = c->n_api_keys,
        .max_body = (size_t)c->max_body,
        .conn_timeout_ms = c->conn_timeout_ms,
        .header_timeout_ms = c->header_timeout_ms,
        .conn_limit = (unsigned)c->max_conns,
        .conn_per_ip = (unsigned)c->max_conns_per_ip,
        .cors_origins = c->cors_origin,
        .allowed_hosts = c->allowed_host,
        .manager = st.manager,
        .request_timeout_ms = c->request_timeout_ms,
        .embed_cache_bytes = (size_t)c->embed_cache,
        .search = st.search,
    };
    if ((rc = fr_server_create(&sc, &st.server))) {
        fr_cli_fail(rc, "serve");
        goto out;
    }
    fr_server_set_cancel_hook(st.server, serve_cancel, &st);
    bool v6 = strchr(c->host, ':') != NULL;
    fprintf(stderr, "frugal: listening on http://%s%s%s:%d\n", v6 ? "[" : "", c->host, v6 ? "]" : "",
            fr_server_port(st.server));
    fflush(stderr);
    if (c->n_api_keys) FR_INFO("%zu API key%s required", c->n_api_keys, c->n_api_keys == 1 ? "" : "s");
    if (c->api_key_flag)
        FR_WARN("--api-key puts the key on the command line, where any user of this machine can read it "
                "(ps, /proc/PID/cmdline): prefer --api-key-file FILE or the FRUGAL_API_KEY variable");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGHUP) {
            FR_INFO("SIGHUP: rescanning the models");
            if ((rc = serve_rescan(&st))) FR_WARN("rescan failed: %s", fr_errdetail());
            continue;
        }
        FR_INFO("%s: draining (up to %lld ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                (long long)c->drain_timeout_ms);
        rc = fr_server_drain(st.server, c->drain_timeout_ms);
        FR_INFO("stopped%s", rc ? " (requests were cancelled)" : "");
        exit_code = 0;
        break;
    }
out:
    fr_server_destroy(st.server);
    fr_server_search_destroy(st.search);
    stop_models(&st);
    fr_serve_config_deinit(c);
    return exit_code;
}
