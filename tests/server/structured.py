#!/usr/bin/env python3
"""structured.py — structured output against a running frugal (driven by
structured.sh): PORT and the model names in the environment.

For each model: 100 generations against 5 JSON schemas (objects with
required and optional properties, enums/const, arrays with min/max items,
nested objects with a date format, anyOf with $ref and type arrays),
seeds varied, temperature 1, through /v1/chat/completions and
/v1/completions, streamed and not, via response_format json_schema,
llama-server's json_object+schema and top-level json_schema.  Every output
must parse and validate against its schema (the small validator below) and
end with finish_reason "stop".  Then: json_object gives an object; a GBNF
grammar gives only what it allows; bad grammars and unsupported schema
keywords are 400s naming them.  Prints "py: N passed, N failed"."""
import json
import os
import re
import sys
import urllib.error
import urllib.request

PORT = os.environ["PORT"]
MODELS = os.environ["MODELS"].split()
N_PER_SCHEMA = int(os.environ.get("N_PER_SCHEMA", "20"))
passed = failed = 0


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL [structured]:", what)
    return cond


def post(path, body, stream=False):
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (PORT, path), json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")
    if not stream:
        return status, json.loads(raw)
    text, finish = "", None
    for line in raw.split("\n"):
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if "error" in ev:
            return 500, ev
        for ch in ev.get("choices", []):
            text += ch.get("text") or (ch.get("delta") or {}).get("content") or ""
            finish = ch.get("finish_reason") or finish
    return status, {"text": text, "finish": finish}


# ---- a small JSON Schema validator (the subset the schemas use) ----

FORMATS = {
    "date": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}


def date_ok(v):
    """RFC 3339 full-date (and the date of a date-time): real days only."""
    y, m, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return 1 <= m <= 12 and 1 <= d <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def is_type(v, t):
    return {"object": lambda: isinstance(v, dict), "array": lambda: isinstance(v, list),
            "string": lambda: isinstance(v, str), "boolean": lambda: isinstance(v, bool),
            "null": lambda: v is None,
            "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool)}[t]()


def validate(v, s, root):
    """None when v is valid for s, else why not."""
    if "$ref" in s:
        return validate(v, root["$defs"][s["$ref"].split("/")[-1]], root)
    if "const" in s and v != s["const"]:
        return "const %r" % (s["const"],)
    if "enum" in s and not any(v == e and type(v) is type(e) for e in s["enum"]):
        return "%r not in enum" % (v,)
    if "anyOf" in s:
        if all(validate(v, a, root) for a in s["anyOf"]):
            return "%r matches no anyOf branch" % (v,)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(is_type(v, t) for t in types):
            return "%r is not %s" % (v, types)
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", 1 << 30):
            return "string length %d" % len(v)
        if "format" in s and not (re.match(FORMATS[s["format"]], v) and
                                  (s["format"] != "date" or date_ok(v))):
            return "%r is not a %s" % (v, s["format"])
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", 1 << 30):
            return "array of %d items" % len(v)
        for x in v:
            why = validate(x, s.get("items", {}), root)
            if why:
                return why
    if isinstance(v, dict):
        props = s.get("properties", {})
        for r in s.get("required", []):
            if r not in v:
                return "required %r missing" % r
        for k, x in v.items():
            if k in props:
                why = validate(x, props[k], root)
                if why:
                    return "%s: %s" % (k, why)
            elif s.get("additionalProperties", not props) is False:
                return "extra property %r" % k
    return None


SCHEMAS = [
    {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer"},
        "id": {"type": "string", "format": "uuid"},
        "active": {"type": "boolean"},
        "nick": {"type": ["string", "null"], "maxLength": 8}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"enum": [1, 2, 3, None]},
        "kind": {"const": "fixed"},
        "ratio": {"type": "number"}},
     "required": ["color", "size", "kind"]},
    {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
        "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 4},
        "matrix": {"type": "array", "maxItems": 2,
                   "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}},
     "required": ["tags", "matrix"]},
    {"type": "object", "properties": {
        "user": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 10},
            "address": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 10},
                "zip": {"type": "string", "minLength": 5, "maxLength": 5}},
                "required": ["city"]}},
            "required": ["name", "address"]},
        "when": {"type": "string", "format": "date"}},
     "required": ["user", "when"]},
    {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                         "required": ["x", "y"]}},
     "type": "object", "properties": {
         "shape": {"anyOf": [{"$ref": "#/$defs/point"},
                             {"type": "array", "items": {"$ref": "#/$defs/point"}, "maxItems": 2},
                             {"type": "null"}, {"type": "boolean"}]},
         "label": {"type": ["string", "integer"], "maxLength": 5}},
     "required": ["shape", "label"]},
]


def generate(model, i, schema, k):
    """One generation, varying the route, streaming and the request shape."""
    chat, stream, shape = k % 2 == 0, k % 3 == 0, k % 4
    body = {"model": model, "temperature": 1.0, "seed": 1000 * i + k, "max_tokens": 400,
            "stream": stream}
    if chat:
        body["messages"] = [{"role": "user", "content": "Give me JSON number %d" % k}]
    else:
        body["prompt"] = "JSON %d:" % k
    if shape == 0 or shape == 1:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "s%d" % i, "schema": schema, "strict": True}}
    elif shape == 2:
        body["response_format"] = {"type": "json_object", "schema": schema}
    else:
        body["json_schema"] = schema
    status, r = post("/v1/chat/completions" if chat else "/v1/completions", body, stream)
    if status != 200:
        return None, None, "status %d: %s" % (status, r)
    if stream:
        return r["text"], r["finish"], None
    c = r["choices"][0]
    return (c["message"]["content"] if chat else c["text"]), c["finish_reason"], None


for model in MODELS:
    good = total = 0
    for i, schema in enumerate(SCHEMAS):
        for k in range(N_PER_SCHEMA):
            total += 1
            text, finish, err = generate(model, i, schema, k)
            if err:
                ok(False, "%s schema %d #%d: %s" % (model, i, k, err))
                continue
            try:
                v = json.loads(text)
            except ValueError as e:
                ok(False, "%s schema %d #%d: not JSON (%s): %r" % (model, i, k, e, text))
                continue
            why = validate(v, schema, schema)
            if ok(why is None and finish == "stop",
                  "%s schema %d #%d: %s (finish %s): %r" % (model, i, k, why, finish, text)):
                good += 1
    print("%s: %d of %d generations parse and validate" % (model, good, total))

    # json_object: any object; '"' and '}' favoured and repetition
    # penalised (both work on what the grammar allows) so that the random
    # model, which repeats one token forever, closes its strings
    bias = {"tiny-llama-q8_0": {"37": 50, "128": 20}, "tiny-qwen2-q8_0": {"1": 50, "92": 20}}.get(model, {})
    for seed in range(3):
        status, r = post("/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": "an object"}], "seed": seed,
            "temperature": 1, "max_tokens": 300, "response_format": {"type": "json_object"},
            "logit_bias": bias, "frequency_penalty": 2, "presence_penalty": 2})
        text = r["choices"][0]["message"]["content"] if status == 200 else ""
        try:
            v = json.loads(text)
        except ValueError:
            v = None
        ok(status == 200 and isinstance(v, dict) and r["choices"][0]["finish_reason"] == "stop",
           "%s json_object seed %d: %s %r" % (model, seed, status, text))

    # a GBNF grammar: yes or no, nothing else, streamed or not
    seen = set()
    for seed in range(8):
        stream = seed % 2 == 1
        status, r = post("/v1/completions", {"model": model, "prompt": "Answer %d:" % seed,
                                             "grammar": 'root ::= ("yes" | "no")', "seed": seed,
                                             "temperature": 1, "stream": stream}, stream)
        text = (r["text"] if stream else r["choices"][0]["text"]) if status == 200 else None
        finish = (r["finish"] if stream else r["choices"][0]["finish_reason"]) if status == 200 else None
        ok(text in ("yes", "no") and finish == "stop", "%s grammar yes/no: %s %r %s" % (model, status, text, finish))
        seen.add(text)

    # a grammar with classes, repetition and escapes
    g = 'root ::= "[" item ("," item){0,3} "]"\nitem ::= "\\"" [a-z]{1,4} "\\"" | [0-9]{1,5} # a comment\n'
    for seed in range(4):
        status, r = post("/v1/completions", {"model": model, "prompt": "List:", "grammar": g, "seed": seed,
                                             "temperature": 1, "max_tokens": 100})
        text = r["choices"][0]["text"] if status == 200 else None
        ok(status == 200 and text is not None and
           re.fullmatch(r'\[("[a-z]{1,4}"|[0-9]{1,5})(,("[a-z]{1,4}"|[0-9]{1,5})){0,3}\]', text) is not None and
           r["choices"][0]["finish_reason"] == "stop",
           "%s grammar list: %s %r" % (model, status, text))

# ---- refusals ----
m = MODELS[0]
for g, want in [('root ::= foo', "undefined rule 'foo'"), ('root ::= "abc', "unterminated literal"),
                ('root ::= root "a"', "left recursion"), ('start ::= "a"', "'root'"),
                ('root ::= [b-a]', "range"), ('root ::= "a"{2000}', "repetition count")]:
    status, r = post("/v1/chat/completions", {"model": m, "messages": [{"role": "user", "content": "x"}],
                                              "grammar": g})
    e = (r or {}).get("error", {})
    ok(status == 400 and e.get("param") == "grammar" and want in e.get("message", "") and "line 1" in
       e.get("message", "") or (status == 400 and want == "'root'" and want in e.get("message", "")),
       "bad grammar %r: %s %s" % (g, status, r))
for schema, kw, path in [
        ({"type": "object", "patternProperties": {"a": {}}}, "patternProperties", "schema"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^a$"}}}, "pattern",
         "schema.properties.a"),
        ({"type": "array", "items": {"allOf": [{}]}}, "allOf", "schema.items"),
        ({"type": "string", "format": "email"}, "format 'email'", "schema"),
        ({"type": "integer", "minimum": 3}, "minimum", "schema")]:
    status, r = post("/v1/chat/completions", {
        "model": m, "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}})
    msg = (r or {}).get("error", {}).get("message", "")
    ok(status == 400 and ("response_format.json_schema.%s:" % path) in msg and kw in msg and
       r["error"].get("param") == "response_format", "unsupported %s: %s %s" % (kw, status, r))
status, r = post("/v1/completions", {"model": m, "prompt": "x", "json_schema": {"type": "object", "not": {}}})
ok(status == 400 and "json_schema: keyword 'not' is not supported" in r["error"]["message"],
   "json_schema 'not': %s %s" % (status, r))
status, r = post("/v1/completions", {"model": m, "prompt": "x", "response_format": {"type": "xml"}})
ok(status == 400 and r["error"]["param"] == "response_format", "response_format xml: %s %s" % (status, r))
status, r = post("/v1/completions", {"model": m, "prompt": "x", "response_format": {"type": "text"},
                                     "max_tokens": 3})
ok(status == 200, "response_format text: %s" % status)

print("py: %d passed, %d failed" % (passed, failed))
