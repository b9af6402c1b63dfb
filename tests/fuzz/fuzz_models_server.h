/*
 * fuzz_models_server.h — the in-process server that fuzz_request and
 * fuzz_ollama send their requests to (included after fuzz_http.h, with
 * N_CTX, MAX_BODY, MAX_RESP and DEADLINE_S defined): a scratch models
 * directory linking the fixture models, a one-thread compute pool, a
 * model manager, metrics and an HTTP server on a free loopback port
 * (fh.port).  Started on the first input; torn down at exit, when the
 * heap must be back where it began (fh_check_heap).
 */
#ifndef FR_FUZZ_MODELS_SERVER_H
#define FR_FUZZ_MODELS_SERVER_H

static struct {
    bool started;
    char dir[64];                       /* the scratch models directory */
    const char *const *models;          /* its links' names [n_models] */
    int n_models;
    fr_compute *compute;
    fr_gguf_env env;
    fr_manager *manager;
    fr_metrics *metrics;
    fr_server *server;
    size_t mem0;
} g;

/* Remove a models directory of ours: its links, then the directory
 * (which fails, harmlessly, if anything else is in it). */
static void remove_dir(const char *dir) {
    for (int i = 0; i < g.n_models; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s.gguf", dir, g.models[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void teardown(void) {
    if (!g.started) return;
    g.started = false;
    fr_server_drain(g.server, 5000);
    fr_server_destroy(g.server);
    fr_manager_destroy(g.manager);
    fr_compute_destroy(g.compute);
    fr_metrics_destroy(g.metrics);
    remove_dir(g.dir);
    fh_check_heap(g.mem0);
}

static void start_server(const char *name, const char *const *models, int n_models) {
    fh.name = name;
    fh.deadline_s = DEADLINE_S;
    fh.max_resp = MAX_RESP;
    g.models = models;
    g.n_models = n_models;
    fh_scratch_dir(models, n_models, remove_dir, g.dir, sizeof g.dir);
    g.mem0 = fr_mem_in_use();
    if (fr_compute_create(1, &g.compute)) die("compute pool: %s", fr_errdetail());
    g.env = (fr_gguf_env){.compute = g.compute, .n_ctx = N_CTX, .parallel = 2, .queue = 4, .batch_tokens = 256};
    fr_manager_config mc = {
        .models_dir = g.dir,
        .defaults = {.n_ctx = N_CTX, .parallel = 2, .keep_alive_ms = 2000, .threads = 1},
        .loader = fr_gguf_loader(&g.env),
    };
    if (fr_manager_create(&mc, &g.manager)) die("model manager: %s", fr_errdetail());
    if (fr_metrics_create(&g.metrics)) die("metrics: %s", fr_errdetail());
    fr_server_config sc = {.host = "127.0.0.1", .port = 0, .max_body = MAX_BODY,
                           .conn_timeout_ms = 10000, .manager = g.manager, .metrics = g.metrics,
                           .embed_cache_bytes = 1 << 20};
    if (fr_server_create(&sc, &g.server)) die("server: %s", fr_errdetail());
    fh.port = fr_server_port(g.server);
    g.started = true;
    atexit(teardown);
}

#endif
