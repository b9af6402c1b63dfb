/*
 * health.c — the routes an operator's tooling polls: GET /health and
 * GET /metrics.
 *
 * /health never needs a key and never touches a model: 200 {"status":
 * "ok"} while serving, 503 {"status": "shutting_down"} (with Retry-After)
 * once draining has begun.  /metrics renders the server's registry in the
 * Prometheus text format (version 0.0.4).
 */
#include <string.h>

#include "base/err.h"
#include "server/server_int.h"

int fr__h_health(fr_req *rq) {
    if (fr_server_draining(rq->srv))
        return fr__reply_json(rq, 503, json_pack("{s:s}", "status", "shutting_down"));
    return fr__reply_json(rq, 200, json_pack("{s:s}", "status", "ok"));
}

int fr__h_metrics(fr_req *rq) {
    char *text;
    size_t len;
    int rc = fr_metrics_render(rq->srv->metrics, &text, &len);
    if (rc) return fr_errf(rc, "no memory to render the metrics");
    rc = fr__reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    fr_free(text);
    return rc;
}
