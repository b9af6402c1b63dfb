/*
 * test_serve_config.c — `frugal serve` configuration (cli/serve_config.c,
 * included here since src/cli is not in the library): defaults, every INI
 * key, [model "name"] sections, relative paths, precedence flags > env >
 * INI > defaults (API key lists too), --flag=value, --data-sync, and the
 * errors: each names the file, line, section and key (or the flag /
 * variable).  Board profiles: `auto` on fake /proc trees (FRUGAL_SYSROOT)
 * of a Pi 4 4 GB / 8 GB, Pi 5 8 GB / 16 GB, CM4, a 24 GB x86 and a 2-core
 * VPS; precedence default < profile < INI < env < flag; an unknown name
 * lists the known ones; --print-config names every source.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/serve_config.c"

static const char *fake_env[16][2];

static const char *env_get(const char *name) {
    for (int i = 0; i < 16 && fake_env[i][0]; i++)
        if (!strcmp(fake_env[i][0], name)) return fake_env[i][1];
    return NULL;
}

static void env_set(int i, const char *name, const char *value) {
    fake_env[i][0] = name;
    fake_env[i][1] = value;
    if (i + 1 < 16) fake_env[i + 1][0] = NULL;
}

static int ini(fr_serve_config *c, const char *text) {
    return fr_serve_config_ini(c, text, strlen(text), "frugal.ini", "/etc/frugal");
}

/* A fresh config, text parsed: rc must be FR_EINVAL with want in the detail. */
static void check_ini_error(const char *text, const char *want) {
    fr_serve_config c;
    fr_serve_config_init(&c);
    int rc = ini(&c, text);
    CHECK_MSG(rc == FR_EINVAL, "'%s': rc %d", text, rc);
    CHECK_MSG(strstr(fr_errdetail(), want) != NULL, "'%s': detail '%s' lacks '%s'", text, fr_errdetail(), want);
    fr_serve_config_deinit(&c);
}

static void test_defaults(void) {
    fr_serve_config c;
    CHECK(fr_serve_config_init(&c) == 0);
    CHECK_STR(c.host, "127.0.0.1");
    CHECK_INT(c.port, 8080);
    CHECK_INT(c.keep_alive_ms, 300000);
    CHECK_INT(c.parallel, 4);
    CHECK_INT(c.queue, 16);
    CHECK_INT(c.ctx, 2048);
    CHECK_INT(c.max_body, 1 << 20);
    CHECK_INT(c.drain_timeout_ms, 30000);
    CHECK_INT(c.conn_timeout_ms, 30000);
    CHECK_NEAR(c.mem_warning, 80, 0);
    CHECK_NEAR(c.mem_emergency, 95, 0);
    CHECK(c.models_dir == NULL && c.budget_bytes == 0 && c.budget_pct == 0);
    CHECK(fr_serve_config_finish(&c) == 0);
    CHECK(c.threads >= 1);
    fr_serve_config_deinit(&c);
}

static void test_full_ini(void) {
    const char *text =
        "; frugal.ini\n"
        "[server]\n"
        "host = 0.0.0.0\n"
        "port = 9000\n"
        "models = models\n"
        "api_key = k1, k2\n"
        "api_key = k3\n"
        "  threads = 3   ; indented, with a comment\n"
        "parallel = 2\n"
        "queue = 8\n"
        "ctx = 4096\n"
        "max_body = 2M\n"
        "keep_alive = 10m\n"
        "drain_timeout = 1m\n"
        "conn_timeout = 5s\n"
        "max_loaded = 2\n"
        "log_level = debug\n"
        "\n"
        "[memory]\n"
        "budget = 60%\n"
        "warning = 70\n"
        "critical = 85%\n"
        "emergency = 97\n"
        "\n"
        "[model \"tiny\"]\n"
        "path = tiny.gguf\n"
        "alias = small\n"
        "ctx = 1024\n"
        "parallel = 1\n"
        "keep_alive = -1\n"
        "pin = yes\n"
        "preload = on\n"
        "threads = 2\n"
        "chat_template = llama3\n"
        "[model \"org/big one\"]\n"
        "path = /abs/big.gguf\n";
    fr_serve_config c;
    fr_serve_config_init(&c);
    int rc = ini(&c, text);
    CHECK_MSG(rc == 0, "%s", fr_errdetail());
    CHECK_STR(c.host, "0.0.0.0");
    CHECK_INT(c.port, 9000);
    CHECK_STR(c.models_dir, "/etc/frugal/models");
    CHECK_INT(c.n_api_keys, 3);
    if (c.n_api_keys == 3) {
        CHECK_STR(c.api_keys[0], "k1");
        CHECK_STR(c.api_keys[1], "k2");
        CHECK_STR(c.api_keys[2], "k3");
    }
    CHECK_INT(c.threads, 3);
    CHECK_INT(c.parallel, 2);
    CHECK_INT(c.queue, 8);
    CHECK_INT(c.ctx, 4096);
    CHECK_INT(c.max_body, 2 << 20);
    CHECK_INT(c.keep_alive_ms, 600000);
    CHECK_INT(c.drain_timeout_ms, 60000);
    CHECK_INT(c.conn_timeout_ms, 5000);
    CHECK_INT(c.max_loaded, 2);
    CHECK_INT(c.log_level, FR_LOG_DEBUG);
    CHECK_NEAR(c.budget_pct, 60, 0);
    CHECK_INT(c.budget_bytes, 0);
    CHECK_NEAR(c.mem_warning, 70, 0);
    CHECK_NEAR(c.mem_critical, 85, 0);
    CHECK_NEAR(c.mem_emergency, 97, 0);
    CHECK_INT(c.n_models, 2);
    if (c.n_models == 2) {
        fr_model_cfg *m = &c.models[0];
        CHECK_STR(m->id, "tiny");
        CHECK_STR(m->path, "/etc/frugal/tiny.gguf");
        CHECK_STR(m->alias, "small");
        CHECK_INT(m->n_ctx, 1024);
        CHECK_INT(m->parallel, 1);
        CHECK_INT(m->keep_alive_ms, -1);
        CHECK(m->pin && m->preload);
        CHECK_INT(m->threads, 2);
        CHECK_STR(m->chat_template, "llama3");
        m = &c.models[1];
        CHECK(m->chat_template == NULL);
        CHECK_STR(m->id, "org/big one");
        CHECK_STR(m->path, "/abs/big.gguf");
        CHECK(m->alias == NULL && !m->pin && !m->preload);
        CHECK_INT(m->keep_alive_ms, -2);
    }
    CHECK(fr_serve_config_finish(&c) == 0);
    fr_serve_config_deinit(&c);
}

static void test_ini_errors(void) {
    check_ini_error("[server]\nport = 80\nprot = 81\n", "frugal.ini:3: [server] prot: unknown key");
    check_ini_error("[server]\nport = http\n", "frugal.ini:2: [server] port: bad integer 'http'");
    check_ini_error("[server]\nport = 70000\n", "frugal.ini:2: [server] port: 70000 is out of range");
    check_ini_error("[memory]\nbudget = 6X\n", "frugal.ini:2: [memory] budget: bad size '6X'");
    check_ini_error("[server]\nkeep_alive = soon\n", "frugal.ini:2: [server] keep_alive: bad duration");
    check_ini_error("[server]\nconn_timeout = 0\n", "[server] conn_timeout: 0 is out of range");
    check_ini_error("[server]\nport = 1\nport = 2\n", "frugal.ini:3: [server] port: given twice");
    check_ini_error("port = 1\n", "frugal.ini:1: key 'port' before any section");
    check_ini_error("[srv]\n", "frugal.ini:1: unknown section [srv]");
    check_ini_error("\n\n[memory]\nport = 1\n", "frugal.ini:4: [memory] port: unknown key");
    check_ini_error("[model tiny]\npath = x\n", "frugal.ini:1: bad section [model tiny]");
    check_ini_error("[model \"\"]\npath = x\n", "frugal.ini:1: bad section");
    check_ini_error("[model \"a\"]\n", "frugal.ini:1: [model \"a\"] has no path");
    check_ini_error("[model \"a\"]\npath = a\n[model \"a\"]\npath = b\n",
                    "frugal.ini:3: model \"a\" is defined twice (first at line 1)");
    check_ini_error("[model \"a\"]\npath = a\npin = maybe\n", "frugal.ini:3: [model \"a\"] pin: bad boolean 'maybe'");
    check_ini_error("[model \"a\"]\npath = a\nsize = 1\n", "frugal.ini:3: [model \"a\"] size: unknown key");
    check_ini_error("[model \"a\"]\npath = a\nchat_template = gemma\n",
                    "frugal.ini:3: [model \"a\"] chat_template: 'gemma' is not a chat template");
    check_ini_error("[model \"a\"]\npath = a\npath = b\n", "frugal.ini:3: [model \"a\"] path: given twice");
    check_ini_error("[server]\nport 8080\n", "frugal.ini:2: syntax error");
    check_ini_error("[server\nport = 1\n", "frugal.ini:1: syntax error");
    check_ini_error("[server]\napi_key = a b\n", "frugal.ini:2: [server] api_key: an API key may only hold");
    check_ini_error("[server]\nlog_level = loud\n", "[server] log_level: bad log level 'loud'");
    char longline[400];
    snprintf(longline, sizeof longline, "[server]\nhost = %0300d\n", 1);
    check_ini_error(longline, "frugal.ini:2: line longer than");
    fr_serve_config c;
    fr_serve_config_init(&c);
    const char nul[] = "[server]\nport = 1\0\n";
    CHECK_INT(fr_serve_config_ini(&c, nul, sizeof nul - 1, "f.ini", NULL), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "f.ini:2: NUL byte") != NULL);
    fr_serve_config_deinit(&c);
}

static void test_precedence(void) {
    fr_serve_config c;
    char *argv[] = {"serve", "--port", "3333", "--api-key", "flagkey", "--keep-alive=1m", NULL};
    bool help;
    /* INI only */
    fr_serve_config_init(&c);
    CHECK(ini(&c, "[server]\nport = 1111\nhost = ::1\napi_key = inikey\nkeep_alive = 2m\n") == 0);
    env_set(0, "FRUGAL_PORT", "2222");
    env_set(1, "FRUGAL_API_KEY", "envkey1,envkey2");
    env_set(2, "FRUGAL_MAX_BODY", "");                 /* empty: unset */
    CHECK(fr_serve_config_env(&c, env_get) == 0);
    CHECK_INT(c.port, 2222);                           /* env beats INI */
    CHECK_STR(c.host, "::1");                          /* INI beats default */
    CHECK_INT(c.n_api_keys, 2);                        /* env's list replaces INI's */
    CHECK_INT(c.max_body, 1 << 20);
    CHECK(fr_serve_config_args(&c, 6, argv, &help) == 0 && !help);
    CHECK_INT(c.port, 3333);                           /* flag beats env */
    CHECK_INT(c.n_api_keys, 1);
    if (c.n_api_keys) CHECK_STR(c.api_keys[0], "flagkey");
    CHECK_INT(c.keep_alive_ms, 60000);
    fr_serve_config_deinit(&c);

    /* errors name the variable and the flag */
    fr_serve_config_init(&c);
    env_set(0, "FRUGAL_PORT", "99999");
    CHECK_INT(fr_serve_config_env(&c, env_get), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "FRUGAL_PORT: 99999 is out of range") != NULL);
    env_set(0, NULL, NULL);
    char *bad[] = {"serve", "--prot", "1"};
    CHECK_INT(fr_serve_config_args(&c, 3, bad, &help), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "unknown option '--prot'") != NULL);
    char *noval[] = {"serve", "--port"};
    CHECK_INT(fr_serve_config_args(&c, 2, noval, &help), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "--port needs a value") != NULL);
    char *badv[] = {"serve", "--memory-budget", "lots"};
    CHECK_INT(fr_serve_config_args(&c, 3, badv, &help), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "--memory-budget: bad size 'lots'") != NULL);
    char *h[] = {"serve", "--port", "1", "-h"};
    CHECK(fr_serve_config_args(&c, 4, h, &help) == 0 && help);
    fr_serve_config_deinit(&c);

    char *cfgargs[] = {"serve", "--api-key", "--config", "--config", "a.ini"};
    CHECK_STR(fr_serve_config_path(5, cfgargs, NULL), "a.ini");
    char *cfgeq[] = {"serve", "--config=b.ini"};
    CHECK_STR(fr_serve_config_path(2, cfgeq, NULL), "b.ini");
    env_set(0, "FRUGAL_CONFIG", "c.ini");
    CHECK_STR(fr_serve_config_path(1, cfgeq, env_get), "c.ini");
    env_set(0, NULL, NULL);
}

static void test_finish(void) {
    char path[] = "/tmp/frugal-keys-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *keys = "# keys\n\n  sk-a  \r\nsk-b\n";
    CHECK(write(fd, keys, strlen(keys)) == (ssize_t)strlen(keys));
    close(fd);
    fr_serve_config c;
    fr_serve_config_init(&c);
    char *argv[] = {"serve", "--api-key", "sk-flag", "--api-key-file", path};
    bool help;
    CHECK(fr_serve_config_args(&c, 5, argv, &help) == 0);
    CHECK(fr_serve_config_finish(&c) == 0);
    CHECK_INT(c.n_api_keys, 3);
    if (c.n_api_keys == 3) {
        CHECK_STR(c.api_keys[0], "sk-flag");
        CHECK_STR(c.api_keys[1], "sk-a");
        CHECK_STR(c.api_keys[2], "sk-b");
    }
    fr_serve_config_deinit(&c);

    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "# none\n\n", 8) == 8);
    close(fd);
    fr_serve_config_init(&c);
    char *argv2[] = {"serve", "--api-key-file", path};
    CHECK(fr_serve_config_args(&c, 3, argv2, &help) == 0);
    CHECK_INT(fr_serve_config_finish(&c), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "has no keys") != NULL);
    fr_serve_config_deinit(&c);
    unlink(path);

    fr_serve_config_init(&c);
    char *argv3[] = {"serve", "--api-key-file", "/nonexistent/keys"};
    CHECK(fr_serve_config_args(&c, 3, argv3, &help) == 0);
    CHECK_INT(fr_serve_config_finish(&c), FR_EIO);
    CHECK(strstr(fr_errdetail(), "/nonexistent/keys") != NULL);
    fr_serve_config_deinit(&c);

    fr_serve_config_init(&c);
    char *argv4[] = {"serve", "--mem-warning", "95"};
    CHECK(fr_serve_config_args(&c, 3, argv4, &help) == 0);
    CHECK_INT(fr_serve_config_finish(&c), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "thresholds must rise") != NULL);
    fr_serve_config_deinit(&c);

    fr_serve_config_init(&c);
    CHECK_INT(fr_serve_config_file(&c, "/nonexistent/frugal.ini"), FR_EIO);
    CHECK(strstr(fr_errdetail(), "config file /nonexistent/frugal.ini") != NULL);
    fr_serve_config_deinit(&c);
}

/* --data-sync normal|full: the three sources, precedence, bad values. */
static void test_data_sync(void) {
    fr_serve_config c;
    bool help;
    fr_serve_config_init(&c);
    CHECK(!c.data_sync_full);                          /* default: normal */
    CHECK(ini(&c, "[search]\ndata_sync = full\n") == 0);
    CHECK(c.data_sync_full);
    env_set(0, "FRUGAL_DATA_SYNC", "normal");
    CHECK(fr_serve_config_env(&c, env_get) == 0);
    CHECK(!c.data_sync_full);                          /* env beats INI */
    char *argv[] = {"serve", "--data-sync", "full"};
    CHECK(fr_serve_config_args(&c, 3, argv, &help) == 0);
    CHECK(c.data_sync_full);                           /* flag beats env */
    char *eq[] = {"serve", "--data-sync=normal"};
    CHECK(fr_serve_config_args(&c, 2, eq, &help) == 0);
    CHECK(!c.data_sync_full);
    char *bad[] = {"serve", "--data-sync", "FULL"};
    CHECK_INT(fr_serve_config_args(&c, 3, bad, &help), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "--data-sync: bad value 'FULL' (want normal or full)") != NULL);
    env_set(0, "FRUGAL_DATA_SYNC", "off");
    CHECK_INT(fr_serve_config_env(&c, env_get), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "FRUGAL_DATA_SYNC: bad value 'off'") != NULL);
    env_set(0, NULL, NULL);
    fr_serve_config_deinit(&c);
    check_ini_error("[search]\ndata_sync = yes\n", "frugal.ini:2: [search] data_sync: bad value 'yes'");
    check_ini_error("[search]\ndata_sync = full\ndata_sync = full\n", "[search] data_sync: given twice");
}

/* ---- profiles ---- */

static char root[128];

static void put(const char *rel, const char *text, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(path, 0755); *p = '/'; }
    FILE *fp = fopen(path, "w");
    CHECK_MSG(fp != NULL, "cannot write %s", path);
    if (fp) { fwrite(text, 1, len, fp); fclose(fp); }
}

/* A fake /proc: the device-tree model (NULL: none, as on a PC), n
 * processors, MemTotal in kB. */
static void fake_board(const char *model, int cpus, long long mem_kb) {
    char cmd[300], buf[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
    mkdir(root, 0755);
    if (model) put("proc/device-tree/model", model, strlen(model) + 1);     /* with its NUL */
    size_t n = 0;
    for (int i = 0; i < cpus; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "processor\t: %d\nmodel name\t: x\ncore id\t\t: %d\n\n",
                              i, i);
    put("proc/cpuinfo", buf, n);
    n = (size_t)snprintf(buf, sizeof buf, "MemTotal:       %lld kB\nMemAvailable:   %lld kB\n", mem_kb,
                         mem_kb / 2);
    put("proc/meminfo", buf, n);
    setenv("FRUGAL_SYSROOT", root, 1);
}

/* auto on a board: the profile applied, and its threads and budget. */
static void check_auto(const char *model, int cpus, long long mem_kb, const char *want, int64_t threads,
                       uint64_t budget, double pct) {
    fake_board(model, cpus, mem_kb);
    fr_board b;
    fr_board_read(&b);
    CHECK_STR(fr_serve_profile_auto(&b), want);
    fr_serve_config c;
    fr_serve_config_init(&c);
    CHECK(ini(&c, "[server]\nprofile = auto\n") == 0);
    CHECK(fr_serve_config_finish(&c) == 0);
    CHECK_MSG(!strcmp(c.profile_used, want), "%s: got %s, want %s", model ? model : "(no model)",
              c.profile_used, want);
    if (threads) CHECK_INT(c.threads, threads);
    CHECK_INT(c.budget_bytes, budget);
    CHECK_NEAR(c.budget_pct, pct, 0);
    fr_serve_config_deinit(&c);
}

static void test_profiles(void) {
    snprintf(root, sizeof root, "/tmp/frugal-test-profiles-%d", (int)getpid());
    const uint64_t G = 1ull << 30;
    check_auto("Raspberry Pi 4 Model B Rev 1.4", 4, 3884924, "pi4-4g", 3, 2560ull << 20, 0);
    check_auto("Raspberry Pi 4 Model B Rev 1.4", 4, 7997928, "pi4-8g", 3, 5 * G, 0);
    check_auto("Raspberry Pi 5 Model B Rev 1.0", 4, 8245520, "pi5-8g", 3, 5 * G, 0);
    check_auto("Raspberry Pi 5 Model B Rev 1.1", 4, 16582080, "pi5-16g", 3, 12 * G, 0);
    check_auto("Raspberry Pi 5 Model B Rev 1.0", 4, 4031456, "pi5-4g", 3, 2560ull << 20, 0);
    check_auto("Raspberry Pi Compute Module 4 Rev 1.0", 4, 3884924, "cm4-4g", 3, 2560ull << 20, 0);
    check_auto(NULL, 16, 24684084, "x86-16g", 0, 0, 75);
    check_auto(NULL, 2, 4026532, "vps-2c", 2, 0, 60);

    /* the Pi 5 8 GB's values where nothing else set them */
    fake_board("Raspberry Pi 5 Model B Rev 1.0", 4, 8245520);
    fr_serve_config c;
    fr_serve_config_init(&c);
    CHECK(fr_serve_config_finish(&c) == 0);            /* no profile: defaults */
    CHECK_INT(c.parallel, 4);
    CHECK_NEAR(c.mem_warning, 80, 0);
    CHECK_STR(c.profile_used, "");
    fr_serve_config_deinit(&c);

    fr_serve_config_init(&c);
    char *argv[] = {"serve", "--profile", "auto", NULL};
    bool help;
    CHECK(fr_serve_config_args(&c, 3, argv, &help) == 0);
    CHECK(fr_serve_config_finish(&c) == 0);
    CHECK_STR(c.profile_used, "pi5-8g");
    CHECK_INT(c.threads, 3);
    CHECK_INT(c.parallel, 2);
    CHECK_INT(c.queue, 8);
    CHECK_INT(c.max_loaded, 1);
    CHECK_NEAR(c.mem_warning, 60, 0);
    CHECK_NEAR(c.mem_critical, 70, 0);
    CHECK_NEAR(c.mem_emergency, 95, 0);
    CHECK_INT(c.ctx, 2048);                            /* not in profiles */
    CHECK(strstr(c.board, "Raspberry Pi 5 Model B Rev 1.0, 4 CPUs") != NULL);
    fr_serve_config_deinit(&c);

    /* precedence: default < profile < INI < env < flag */
    fr_serve_config_init(&c);
    CHECK(ini(&c, "[server]\nprofile = pi4-8g\nparallel = 3\nqueue = 5\n[memory]\nwarning = 50\n") == 0);
    env_set(0, "FRUGAL_QUEUE", "6");
    env_set(1, "FRUGAL_PROFILE", "pi5-16g");
    CHECK(fr_serve_config_env(&c, env_get) == 0);
    env_set(0, NULL, NULL);
    char *flags[] = {"serve", "--threads", "1", "--max-loaded=2", "--print-config", NULL};
    CHECK(fr_serve_config_args(&c, 5, flags, &help) == 0 && c.print_config);
    CHECK(fr_serve_config_finish(&c) == 0);
    CHECK_STR(c.profile_used, "pi5-16g");              /* env's profile beats the INI's */
    CHECK_INT(c.budget_bytes, 12 * G);                 /* profile beats default */
    CHECK_NEAR(c.mem_critical, 70, 0);
    CHECK_INT(c.parallel, 3);                          /* INI beats profile */
    CHECK_NEAR(c.mem_warning, 50, 0);
    CHECK_INT(c.queue, 6);                             /* env beats INI */
    CHECK_INT(c.threads, 1);                           /* flag beats profile */
    CHECK_INT(c.max_loaded, 2);
    CHECK_INT(c.port, 8080);                           /* default */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fr_serve_config_print(&c, f);
    fclose(f);
    const char *want[] = {"profile          pi5-16g", "env FRUGAL_PROFILE", "budget           12G",
                          "profile pi5-16g", "parallel         3", "INI :3", "queue            6",
                          "env FRUGAL_QUEUE", "threads          1", "flag --threads", "port             8080",
                          "max_loaded       2", "flag --max-loaded", "api_key          (0 keys)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_MSG(text && strstr(text, want[i]), "--print-config lacks '%s':\n%s", want[i], text ? text : "");
    free(text);
    fr_serve_config_deinit(&c);

    /* an unknown profile names the known ones, from each source */
    check_ini_error("[server]\nprofile = pi3\n", "frugal.ini:2: [server] profile: unknown profile 'pi3' "
                    "(known: pi4-4g, pi4-8g, pi5-4g, pi5-8g, pi5-16g, cm4-4g, vps-2c, x86-16g or auto)");
    fr_serve_config_init(&c);
    char *bad[] = {"serve", "--profile", "rpi5"};
    CHECK_INT(fr_serve_config_args(&c, 3, bad, &help), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "--profile: unknown profile 'rpi5' (known: pi4-4g") != NULL);
    fr_serve_config_deinit(&c);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
    unsetenv("FRUGAL_SYSROOT");
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    test_data_sync();
    test_defaults();
    test_full_ini();
    test_ini_errors();
    test_precedence();
    test_finish();
    test_profiles();
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
