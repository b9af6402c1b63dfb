/*
 * test_ask_cite.c — which sources an answer cites (fr__ask_mark_cited,
 * the "cited" fields of POST /v1/collections/{name}/ask).
 */
#include <jansson.h>

#include "harness.h"
#include "server/server_int.h"

/* Sources 1..n, the answer, and the cited markers as "1,3" ("" for none). */
static void cites(int n, const char *answer, const char *want) {
    json_t *src = json_array();
    for (int i = 1; i <= n; i++) json_array_append_new(src, json_pack("{s:i, s:s}", "marker", i, "text", "t"));
    json_t *got = fr__ask_mark_cited(src, answer);
    char buf[256] = "";
    size_t k;
    json_t *v;
    json_array_foreach(got, k, v) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%lld", k ? "," : "", (long long)json_integer_value(v));
    }
    CHECK_MSG(!strcmp(buf, want), "answer '%s': cited '%s', want '%s'", answer ? answer : "(null)", buf, want);
    /* each source's flag agrees with the list */
    json_array_foreach(src, k, v) {
        bool in = false;
        size_t j;
        json_t *m;
        json_array_foreach(got, j, m) in |= json_integer_value(m) == (json_int_t)k + 1;
        CHECK_MSG(json_is_boolean(json_object_get(v, "cited")) && json_is_true(json_object_get(v, "cited")) == in,
                  "answer '%s': source %zu cited flag", answer ? answer : "(null)", k + 1);
    }
    json_decref(got);
    json_decref(src);
}

int main(void) {
    cites(3, "Rockets burn fuel [1].", "1");
    cites(3, "Both [3] and [1] say so.", "1,3");
    cites(3, "See [1, 3].", "1,3");
    cites(3, "See [2,3][1].", "1,2,3");
    cites(3, "No sources say it.", "");
    cites(3, NULL, "");
    cites(3, "", "");
    cites(3, "[4] is not a source, [0] neither, [x] nor [", "");
    cites(3, "[99999999999] [-1] [1", "1");
    cites(12, "the tenth [10] and the second [2]", "2,10");
    cites(0, "[1]", "");
    return harness_done();
}
