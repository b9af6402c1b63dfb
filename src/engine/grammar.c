/*
 * grammar.c — GBNF parser, pushdown matcher and token masks (contract:
 * grammar.h).
 *
 * Representation (as llama.cpp's, written anew).  A compiled grammar is
 * one array of elements; rule r's body starts at rule_start[r] and is its
 * alternatives, each a sequence of elements, separated by ALT and closed
 * by END.  Element kinds: REF (another rule), CHAR/CHAR_NOT (the first
 * item of a character group: a code point, or with a following RNG_UPPER
 * the lower end of a range; CHAR_NOT negates the group), CHAR_ALT (a
 * further item of the group), RNG_UPPER (the upper end of the preceding
 * item's range), ANY ('.').  A literal "ab" is two one-item groups.
 * Repetitions and groups become generated rules at parse time (grammar.h),
 * so an element position is all a matcher needs.
 *
 * A stack is a list of positions, bottom first; its top (last) is always
 * a character group: "expanding" a stack whose top is a REF replaces the
 * REF by what follows it in its sequence (nothing at the sequence's end:
 * tail calls do not grow stacks) and pushes the first element of each of
 * the rule's alternatives — one stack per alternative, expanded again
 * until each top is a group or the stack is empty.  Expansion is a loop
 * over an explicit work list, never C recursion, and counts its steps.
 * Advancing by a code point keeps the stacks whose top group matches it,
 * with the top replaced by the next element of its sequence, and expands
 * them.  A state's stacks are kept unique with a small hash table; the
 * state's key is the sum of its stacks' mixed hashes (independent of the
 * order in which they were found) and the count.
 *
 * Masks walk the token texts in byte order (fr_gvocab: sorted, with each
 * one's common prefix with the previous).  levels[d] is the state after
 * the first d bytes of the current token; a byte that does not finish a
 * character leaves the stacks as they are (the level points at the
 * earlier level's set) and only checks that some top group could still
 * match a character starting with those bytes.  Going to the next token,
 * levels up to its common prefix are kept; when the previous token died
 * at a depth within that prefix, the next one dies too without work.
 * Within one walk, advancing a state by a character is memoised by the
 * state and by which of its stacks take the character (a bitmask, for
 * states of at most 64 stacks): all the characters a string accepts
 * share one advance, so a state inside a string costs one expansion, not
 * one per distinct character of the vocabulary; the results live in a
 * pool of sets (bounded) that the levels point into.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "engine/grammar.h"

enum { E_END = 0, E_ALT, E_REF, E_CHAR, E_CHAR_NOT, E_CHAR_ALT, E_RNG_UPPER, E_ANY };

typedef struct gel {
    uint32_t type;
    uint32_t v;
} gel;

struct fr_grammar {
    atomic_int refs;
    gel *e;
    uint32_t n_e;
    uint32_t n_rules, root;
    uint64_t hash;                /* of the compiled form: mask cache keys */
    uint32_t *alt_off;            /* [n_rules + 1] into alts */
    uint32_t *alts;               /* first position of each alternative */
    size_t bytes;
};

/* ================= parsing ================= */

typedef struct gvec {
    gel *e;
    uint32_t n, cap;
} gvec;

typedef struct prule {
    const char *name;             /* NULL: generated */
    uint32_t name_len;
    const char *at;               /* first reference, or the construct that made it */
    bool defined;
    gvec body;
} prule;

typedef struct parser {
    const char *start, *end;
    prule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *ht;                 /* name → rule index + 1 */
    uint32_t ht_cap;
    size_t n_elems;               /* all bodies together */
} parser;

static void line_col(const parser *p, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *s = p->start; s < at && s < p->end; s++) {
        if (*s == '\n') {
            (*line)++;
            *col = 1;
        } else *col += 1;
    }
}

__attribute__((format(printf, 3, 4)))
static int perr(const parser *p, const char *at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    line_col(p, at, &line, &col);
    return fr_errf(FR_EINVAL, "grammar: line %d, column %d: %s", line, col, msg);
}

static int vec_push(parser *p, gvec *v, uint32_t type, uint32_t val, const char *at) {
    if (p->n_elems >= FR_GRAMMAR_MAX_ELEMS)
        return perr(p, at, "the grammar is too large (more than %u elements, repetitions "
                    "expanded)", (unsigned)FR_GRAMMAR_MAX_ELEMS);
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? 2 * v->cap : 16;
        gel *e = fr_realloc(v->e, (size_t)cap * sizeof *e);
        if (!e) return FR_ENOMEM;
        v->e = e;
        v->cap = cap;
    }
    v->e[v->n++] = (gel){type, val};
    p->n_elems++;
    return 0;
}

static int vec_append(parser *p, gvec *v, const gel *e, uint32_t n, const char *at) {
    for (uint32_t i = 0; i < n; i++) {
        int rc = vec_push(p, v, e[i].type, e[i].v, at);
        if (rc) return rc;
    }
    return 0;
}

static uint32_t name_hash(const char *s, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* A new rule (name NULL: generated); its index in *out. */
static int add_rule(parser *p, const char *name, uint32_t len, const char *at, uint32_t *out) {
    if (p->n_rules >= FR_GRAMMAR_MAX_RULES)
        return perr(p, at, "the grammar is too large (more than %d rules, repetitions and "
                    "groups included)", FR_GRAMMAR_MAX_RULES);
    if (p->n_rules == p->cap_rules) {
        uint32_t cap = p->cap_rules ? 2 * p->cap_rules : 32;
        prule *r = fr_realloc(p->rules, (size_t)cap * sizeof *r);
        if (!r) return FR_ENOMEM;
        p->rules = r;
        p->cap_rules = cap;
    }
    p->rules[p->n_rules] = (prule){.name = name, .name_len = len, .at = at};
    *out = p->n_rules++;
    if (!name) return 0;
    if (2 * p->n_rules > p->ht_cap) {   /* grow and rehash the names */
        uint32_t cap = p->ht_cap ? 2 * p->ht_cap : 64;
        while (2 * p->n_rules > cap) cap *= 2;
        uint32_t *ht = fr_calloc(cap, sizeof *ht);
        if (!ht) return FR_ENOMEM;
        for (uint32_t i = 0; i < p->n_rules; i++) {
            if (!p->rules[i].name) continue;
            uint32_t h = name_hash(p->rules[i].name, p->rules[i].name_len) & (cap - 1);
            while (ht[h]) h = (h + 1) & (cap - 1);
            ht[h] = i + 1;
        }
        fr_free(p->ht);
        p->ht = ht;
        p->ht_cap = cap;
        return 0;
    }
    uint32_t h = name_hash(name, len) & (p->ht_cap - 1);
    while (p->ht[h]) h = (h + 1) & (p->ht_cap - 1);
    p->ht[h] = *out + 1;
    return 0;
}

/* The rule named s[0..n), created (undefined) on first sight. */
static int rule_id(parser *p, const char *s, uint32_t n, uint32_t *out) {
    if (p->ht_cap) {
        uint32_t h = name_hash(s, n) & (p->ht_cap - 1);
        for (; p->ht[h]; h = (h + 1) & (p->ht_cap - 1)) {
            prule *r = &p->rules[p->ht[h] - 1];
            if (r->name_len == n && !memcmp(r->name, s, n)) {
                *out = p->ht[h] - 1;
                return 0;
            }
        }
    }
    return add_rule(p, s, n, s, out);
}

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Skip blanks and comments; newlines too when newline_ok. */
static const char *skip_space(const parser *p, const char *s, bool newline_ok) {
    while (s < p->end) {
        if (*s == ' ' || *s == '\t' || *s == '\r') s++;
        else if (*s == '\n' && newline_ok) s++;
        else if (*s == '#') {
            while (s < p->end && *s != '\n') s++;
        } else break;
    }
    return s;
}

/* One UTF-8 code point of the grammar's text. */
static int decode_utf8(const parser *p, const char **sp, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)*sp;
    size_t left = (size_t)(p->end - *sp);
    uint8_t b = s[0];
    int n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (size_t)n > left) return perr(p, *sp, "invalid UTF-8");
    uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1Fu) : n == 3 ? (b & 0x0Fu) : (b & 0x07u);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return perr(p, *sp, "invalid UTF-8");
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *sp += n;
    *cp = c;
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A character of a literal or a class, with escapes. */
static int parse_char(const parser *p, const char **sp, uint32_t *cp) {
    const char *s = *sp;
    if (*s != '\\') return decode_utf8(p, sp, cp);
    if (s + 1 >= p->end) return perr(p, s, "an escape at the end of the text");
    char c = s[1];
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; i++) {
            int h = s + 2 + i < p->end ? hexval(s[2 + i]) : -1;
            if (h < 0) return perr(p, s, "\\%c needs %d hexadecimal digits", c, digits);
            v = (v << 4) | (uint32_t)h;
        }
        if (v > 0x10FFFF) return perr(p, s, "code point U+%X is beyond U+10FFFF", (unsigned)v);
        *cp = v;
        *sp = s + 2 + digits;
        return 0;
    }
    switch (c) {
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case '0': *cp = 0; break;
    case '\\': case '"': case '[': case ']': case '-': case '^': case '\'': case '/':
        *cp = (uint32_t)c;
        break;
    default: return perr(p, s, "unknown escape '\\%c'", c);
    }
    *sp = s + 2;
    return 0;
}

static int parse_alternates(parser *p, const char **sp, gvec *out, bool nested, int depth);

/* Turn the unit seq[from..n) into one REF (a generated rule unless it is
 * one already), removed from seq; its element in *x. */
static int unit_ref(parser *p, gvec *seq, uint32_t from, const char *at, gel *x) {
    if (seq->n - from == 1 && seq->e[from].type == E_REF) {
        *x = seq->e[from];
        seq->n = from;
        p->n_elems--;
        return 0;
    }
    uint32_t r = 0;
    int rc = add_rule(p, NULL, 0, at, &r);
    if (rc) return rc;
    gvec body = {0};
    if ((rc = vec_append(p, &body, seq->e + from, seq->n - from, at)) ||
        (rc = vec_push(p, &body, E_END, 0, at))) {
        fr_free(body.e);
        return rc;
    }
    p->n_elems -= seq->n - from;
    seq->n = from;
    p->rules[r].body = body;
    p->rules[r].defined = true;
    *x = (gel){E_REF, r};
    return 0;
}

/* A generated rule with the given body elements. */
static int gen_rule(parser *p, const gel *e, uint32_t n, const char *at, uint32_t *out) {
    int rc = add_rule(p, NULL, 0, at, out);
    if (rc) return rc;
    gvec body = {0};
    if ((rc = vec_append(p, &body, e, n, at))) {
        fr_free(body.e);
        return rc;
    }
    p->rules[*out].body = body;
    p->rules[*out].defined = true;
    return 0;
}

/* The repetition {min, max} (max UINT32_MAX: unbounded) of seq[from..). */
static int repeat(parser *p, gvec *seq, uint32_t from, uint32_t min, uint32_t max, const char *at) {
    gel x;
    int rc = unit_ref(p, seq, from, at, &x);
    if (rc) return rc;
    for (uint32_t i = 0; i < min; i++)
        if ((rc = vec_push(p, seq, x.type, x.v, at))) return rc;
    if (max == UINT32_MAX) {   /* R ::= x R | */
        uint32_t r = p->n_rules;
        gel body[] = {x, {E_REF, r}, {E_ALT, 0}, {E_END, 0}};
        if ((rc = gen_rule(p, body, 4, at, &r))) return rc;
        return vec_push(p, seq, E_REF, r, at);
    }
    if (max == min) return 0;
    /* O1 ::= x | ; Ok ::= x O(k-1) | */
    uint32_t prev = 0;
    for (uint32_t k = 1; k <= max - min; k++) {
        uint32_t r;
        if (k == 1) {
            gel body[] = {x, {E_ALT, 0}, {E_END, 0}};
            rc = gen_rule(p, body, 3, at, &r);
        } else {
            gel body[] = {x, {E_REF, prev}, {E_ALT, 0}, {E_END, 0}};
            rc = gen_rule(p, body, 4, at, &r);
        }
        if (rc) return rc;
        prev = r;
    }
    return vec_push(p, seq, E_REF, prev, at);
}

static int parse_count(parser *p, const char **sp, uint32_t *out) {
    const char *s = *sp;
    uint32_t v = 0;
    if (s >= p->end || *s < '0' || *s > '9') return perr(p, s, "a number expected in {m,n}");
    while (s < p->end && *s >= '0' && *s <= '9') {
        v = v * 10 + (uint32_t)(*s - '0');
        if (v > FR_GRAMMAR_MAX_REPEAT)
            return perr(p, *sp, "repetition count above %d", FR_GRAMMAR_MAX_REPEAT);
        s++;
    }
    *sp = s;
    *out = v;
    return 0;
}

static int parse_sequence(parser *p, const char **sp, gvec *seq, bool nested, int depth) {
    const char *s = *sp;
    uint32_t last = UINT32_MAX;     /* start of the last unit in seq */
    int rc;
    while (s < p->end) {
        const char *at = s;
        char c = *s;
        if (c == '"') {
            last = seq->n;
            s++;
            while (s < p->end && *s != '"') {
                if (*s == '\n') return perr(p, at, "unterminated literal");
                uint32_t cp;
                if ((rc = parse_char(p, &s, &cp)) || (rc = vec_push(p, seq, E_CHAR, cp, at))) return rc;
            }
            if (s >= p->end) return perr(p, at, "unterminated literal");
            s++;
        } else if (c == '[') {
            last = seq->n;
            s++;
            uint32_t type = E_CHAR;
            if (s < p->end && *s == '^') {
                type = E_CHAR_NOT;
                s++;
            }
            uint32_t items = 0;
            while (s < p->end && *s != ']') {
                if (*s == '\n') return perr(p, at, "unterminated character class");
                uint32_t lo, hi;
                if ((rc = parse_char(p, &s, &lo))) return rc;
                if ((rc = vec_push(p, seq, items ? E_CHAR_ALT : type, lo, at))) return rc;
                if (s + 1 < p->end && *s == '-' && s[1] != ']') {
                    const char *r_at = s;
                    s++;
                    if ((rc = parse_char(p, &s, &hi))) return rc;
                    if (hi < lo) return perr(p, r_at, "range end U+%X below its start U+%X",
                                             (unsigned)hi, (unsigned)lo);
                    if ((rc = vec_push(p, seq, E_RNG_UPPER, hi, at))) return rc;
                }
                items++;
            }
            if (s >= p->end) return perr(p, at, "unterminated character class");
            if (items == 0) return perr(p, at, "empty character class");
            s++;
        } else if (c == '.') {
            last = seq->n;
            if ((rc = vec_push(p, seq, E_ANY, 0, at))) return rc;
            s++;
        } else if (is_name_char(c)) {
            const char *n0 = s;
            while (s < p->end && is_name_char(*s)) s++;
            /* the start of the next rule: `name ::=` */
            const char *t = skip_space(p, s, false);
            if (!nested && t + 3 <= p->end && !memcmp(t, "::=", 3)) {
                s = n0;
                break;
            }
            uint32_t r;
            if ((rc = rule_id(p, n0, (uint32_t)(s - n0), &r))) return rc;
            last = seq->n;
            if ((rc = vec_push(p, seq, E_REF, r, at))) return rc;
        } else if (c == '(') {
            if (depth > 64) return perr(p, at, "groups nested deeper than 64");
            s = skip_space(p, s + 1, true);
            uint32_t r = 0;
            if ((rc = add_rule(p, NULL, 0, at, &r))) return rc;
            gvec body = {0};
            if ((rc = parse_alternates(p, &s, &body, true, depth + 1))) {
                fr_free(body.e);
                return rc;
            }
            p->rules[r].body = body;
            p->rules[r].defined = true;
            if (s >= p->end || *s != ')') return perr(p, at, "unclosed '('");
            s++;
            last = seq->n;
            if ((rc = vec_push(p, seq, E_REF, r, at))) return rc;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == UINT32_MAX) return perr(p, at, "'%c' with nothing before it to repeat", c);
            uint32_t min = 0, max = UINT32_MAX;
            s++;
            if (c == '+') min = 1;
            else if (c == '?') max = 1;
            else if (c == '{') {
                s = skip_space(p, s, true);
                if ((rc = parse_count(p, &s, &min))) return rc;
                s = skip_space(p, s, true);
                max = min;
                if (s < p->end && *s == ',') {
                    s = skip_space(p, s + 1, true);
                    max = UINT32_MAX;
                    if (s < p->end && *s != '}') {
                        if ((rc = parse_count(p, &s, &max))) return rc;
                        if (max < min) return perr(p, at, "{%u,%u}: the maximum is below the minimum",
                                                   (unsigned)min, (unsigned)max);
                    }
                    s = skip_space(p, s, true);
                }
                if (s >= p->end || *s != '}') return perr(p, at, "unclosed '{'");
                s++;
            }
            if ((rc = repeat(p, seq, last, min, max, at))) return rc;
            last = UINT32_MAX;      /* x** is not allowed: repeat a group */
        } else if (c == '|' || c == ')' || c == '\n') {
            break;
        } else {
            return perr(p, at, "unexpected character '%c'", c);
        }
        s = skip_space(p, s, nested);
    }
    *sp = s;
    return 0;
}

/* Alternatives into out, closed by END.  At the top level a newline ends
 * them unless the next line begins with '|'. */
static int parse_alternates(parser *p, const char **sp, gvec *out, bool nested, int depth) {
    const char *s = *sp;
    int rc;
    for (;;) {
        if ((rc = parse_sequence(p, &s, out, nested, depth))) return rc;
        const char *t = s;
        if (!nested) t = skip_space(p, s, true);
        if (t < p->end && *t == '|') {
            if ((rc = vec_push(p, out, E_ALT, 0, t))) return rc;
            s = skip_space(p, t + 1, true);
            continue;
        }
        break;
    }
    *sp = s;
    return vec_push(p, out, E_END, 0, s);
}

static int parse_rules(parser *p) {
    const char *s = skip_space(p, p->start, true);
    int rc;
    while (s < p->end) {
        const char *n0 = s;
        while (s < p->end && is_name_char(*s)) s++;
        if (s == n0) return perr(p, n0, "a rule name expected");
        uint32_t r;
        if ((rc = rule_id(p, n0, (uint32_t)(s - n0), &r))) return rc;
        if (p->rules[r].defined)
            return perr(p, n0, "rule '%.*s' is defined twice", (int)(s - n0), n0);
        s = skip_space(p, s, false);
        if (s + 3 > p->end || memcmp(s, "::=", 3)) return perr(p, s, "'::=' expected");
        s = skip_space(p, s + 3, true);
        gvec body = {0};
        if ((rc = parse_alternates(p, &s, &body, false, 0))) {
            fr_free(body.e);
            return rc;
        }
        p->rules[r].body = body;
        p->rules[r].defined = true;
        p->rules[r].at = n0;
        if (s < p->end && *s != '\n' && !is_name_char(*s))
            return perr(p, s, "unexpected '%c'", *s);
        s = skip_space(p, s, true);
    }
    return 0;
}

/* ---- checks: undefined rules, root, left recursion ---- */

static const char *rule_desc(const parser *p, uint32_t r, char *buf, size_t cap) {
    const prule *ru = &p->rules[r];
    if (ru->name) snprintf(buf, cap, "rule '%.*s'", (int)(ru->name_len > 64 ? 64 : ru->name_len), ru->name);
    else snprintf(buf, cap, "a repetition or group");
    return buf;
}

static int check_rules(parser *p) {
    for (uint32_t r = 0; r < p->n_rules; r++)
        if (!p->rules[r].defined)
            return perr(p, p->rules[r].at, "undefined rule '%.*s'",
                        (int)(p->rules[r].name_len > 64 ? 64 : p->rules[r].name_len), p->rules[r].name);
    bool have = false;
    if (p->ht_cap) {
        uint32_t h = name_hash("root", 4) & (p->ht_cap - 1);
        for (; p->ht[h]; h = (h + 1) & (p->ht_cap - 1))
            if (p->rules[p->ht[h] - 1].name_len == 4 && !memcmp(p->rules[p->ht[h] - 1].name, "root", 4)) {
                have = true;
            }
    }
    if (!have) return fr_errf(FR_EINVAL, "grammar: no rule named 'root' (the start rule)");

    /* nullable rules, to a fixpoint */
    uint32_t n = p->n_rules;
    bool *nul = fr_calloc(n ? n : 1, sizeof *nul);
    uint8_t *color = fr_calloc(n ? n : 1, 1);
    uint32_t *stk = fr_malloc((size_t)(n ? n : 1) * 2 * sizeof *stk);
    uint32_t *eoff = NULL, *edge = NULL;
    int rc = 0;
    if (!nul || !color || !stk) {
        rc = FR_ENOMEM;
        goto out;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < n; r++) {
            if (nul[r]) continue;
            const gvec *b = &p->rules[r].body;
            bool alt_ok = true;
            for (uint32_t i = 0; i < b->n; i++) {
                uint32_t t = b->e[i].type;
                if (t == E_ALT || t == E_END) {
                    if (alt_ok) {
                        nul[r] = changed = true;
                        break;
                    }
                    alt_ok = true;
                } else if (t == E_REF) {
                    if (!nul[b->e[i].v]) alt_ok = false;
                } else alt_ok = false;
            }
        }
    }
    /* edges r → the rules r can begin with (after nullable prefixes) */
    size_t n_edges = 0;
    for (uint32_t r = 0; r < n; r++) n_edges += p->rules[r].body.n;
    eoff = fr_malloc((size_t)(n + 1) * sizeof *eoff);
    edge = fr_malloc((n_edges ? n_edges : 1) * sizeof *edge);
    if (!eoff || !edge) {
        rc = FR_ENOMEM;
        goto out;
    }
    uint32_t ne = 0;
    for (uint32_t r = 0; r < n; r++) {
        eoff[r] = ne;
        const gvec *b = &p->rules[r].body;
        bool lead = true;
        for (uint32_t i = 0; i < b->n; i++) {
            uint32_t t = b->e[i].type;
            if (t == E_ALT || t == E_END) lead = true;
            else if (t == E_REF) {
                if (lead) edge[ne++] = b->e[i].v;
                if (!nul[b->e[i].v]) lead = false;
            } else lead = false;
        }
    }
    eoff[n] = ne;
    /* a cycle among them: iterative DFS, stack of (rule, next edge) */
    for (uint32_t r0 = 0; r0 < n && !rc; r0++) {
        if (color[r0]) continue;
        uint32_t sp = 0;
        stk[sp++] = r0;
        stk[sp++] = eoff[r0];
        color[r0] = 1;
        while (sp && !rc) {
            uint32_t r = stk[sp - 2], k = stk[sp - 1];
            if (k == eoff[r + 1]) {
                color[r] = 2;
                sp -= 2;
                continue;
            }
            stk[sp - 1] = k + 1;
            uint32_t to = edge[k];
            if (color[to] == 1) {
                char d1[96];
                rc = perr(p, p->rules[to].at, "left recursion: %s can reach itself without "
                          "consuming any character (rewrite it with right recursion or a "
                          "repetition; a repeated part must not match empty text)",
                          rule_desc(p, to, d1, sizeof d1));
            } else if (color[to] == 0) {
                color[to] = 1;
                stk[sp++] = to;
                stk[sp++] = eoff[to];
            }
        }
    }
out:
    fr_free(eoff);
    fr_free(edge);
    fr_free(nul);
    fr_free(color);
    fr_free(stk);
    return rc;
}

static void parser_free(parser *p) {
    for (uint32_t r = 0; r < p->n_rules; r++) fr_free(p->rules[r].body.e);
    fr_free(p->rules);
    fr_free(p->ht);
}

int fr_grammar_parse(const char *text, size_t len, fr_grammar **out) {
    *out = NULL;
    if (!text) return fr_errf(FR_EINVAL, "grammar: no text");
    if (len > FR_GRAMMAR_MAX_TEXT)
        return fr_errf(FR_EINVAL, "grammar: %zu bytes, at most %u", len, (unsigned)FR_GRAMMAR_MAX_TEXT);
    if (memchr(text, 0, len)) return fr_errf(FR_EINVAL, "grammar: contains a NUL byte");
    parser p = {.start = text, .end = text + len};
    fr_grammar *g = NULL;
    int rc = parse_rules(&p);
    if (!rc) rc = check_rules(&p);
    if (rc) goto done;
    rc = FR_ENOMEM;
    if (!(g = fr_calloc(1, sizeof *g))) goto done;
    atomic_init(&g->refs, 1);
    g->n_rules = p.n_rules;
    size_t n_e = 0, n_alts = 0;
    for (uint32_t r = 0; r < p.n_rules; r++) {
        n_e += p.rules[r].body.n;
        for (uint32_t i = 0; i < p.rules[r].body.n; i++)
            if (p.rules[r].body.e[i].type == E_ALT || p.rules[r].body.e[i].type == E_END) n_alts++;
    }
    g->e = fr_malloc(n_e * sizeof *g->e);
    g->alt_off = fr_malloc((p.n_rules + 1) * sizeof *g->alt_off);
    g->alts = fr_malloc((n_alts ? n_alts : 1) * sizeof *g->alts);
    if (!g->e || !g->alt_off || !g->alts) goto done;
    uint32_t at = 0, na = 0;
    for (uint32_t r = 0; r < p.n_rules; r++) {
        g->alt_off[r] = na;
        g->alts[na++] = at;
        const gvec *b = &p.rules[r].body;
        for (uint32_t i = 0; i < b->n; i++) {
            g->e[at + i] = b->e[i];
            if (b->e[i].type == E_ALT) g->alts[na++] = at + i + 1;
        }
        at += b->n;
    }
    g->alt_off[p.n_rules] = na;
    g->n_e = at;
    uint32_t root = 0;
    rule_id(&p, "root", 4, &root);
    g->root = root;
    uint64_t h = 0x243F6A8885A308D3ULL ^ root;
    for (uint32_t i = 0; i < g->n_e; i++) h = (h ^ (((uint64_t)g->e[i].type << 32) | g->e[i].v)) * 0x100000001B3ULL;
    for (uint32_t i = 0; i < na; i++) h = (h ^ g->alts[i]) * 0x100000001B3ULL;
    g->hash = h;
    g->bytes = sizeof *g + n_e * sizeof *g->e + (p.n_rules + 1) * sizeof *g->alt_off +
               n_alts * sizeof *g->alts;
    *out = g;
    g = NULL;
    rc = 0;
done:
    if (g) fr_grammar_unref(g);
    parser_free(&p);
    return rc;
}

fr_grammar *fr_grammar_ref(fr_grammar *g) {
    atomic_fetch_add(&g->refs, 1);
    return g;
}

void fr_grammar_unref(fr_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    fr_free(g->e);
    fr_free(g->alt_off);
    fr_free(g->alts);
    fr_free(g);
}

size_t fr_grammar_bytes(const fr_grammar *g) { return g->bytes; }
int32_t fr_grammar_n_rules(const fr_grammar *g) { return (int32_t)g->n_rules; }

/* ================= the vocabulary ================= */

struct fr_gvocab {
    int32_t n_vocab;
    char *blob;
    uint32_t *off;                /* [n_vocab] */
    uint16_t *len;                /* [n_vocab]; 0: never allowed by text */
    int32_t *order;               /* [n_order] ids sorted by text */
    uint16_t *lcp;                /* [n_order] common prefix with the previous */
    int32_t n_order;
    bool *eog;                    /* [n_vocab] */
    size_t bytes;
};

static int cmp_tok(const void *a, const void *b, void *ud) {
    const fr_gvocab *tv = ud;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = tv->len[x], ly = tv->len[y], n = lx < ly ? lx : ly;
    int c = memcmp(tv->blob + tv->off[x], tv->blob + tv->off[y], n);
    if (c) return c;
    return lx < ly ? -1 : lx > ly ? 1 : (x > y) - (x < y);
}

size_t fr_gvocab_estimate_bytes(const fr_vocab *v) {
    size_t n = (size_t)fr_vocab_n_tokens(v), text = 0;
    for (int32_t i = 0; i < (int32_t)n; i++) {
        size_t l = 0;
        fr_vocab_token_text(v, i, &l);
        text += l;
    }
    return sizeof(fr_gvocab) + text + n * (sizeof(uint32_t) + 2 * sizeof(uint16_t) +
                                           sizeof(int32_t) + sizeof(bool));
}

int fr_gvocab_create(const fr_vocab *v, fr_gvocab **out) {
    *out = NULL;
    int32_t n = fr_vocab_n_tokens(v);
    fr_gvocab *tv = fr_calloc(1, sizeof *tv);
    if (!tv) return FR_ENOMEM;
    tv->n_vocab = n;
    size_t total = 0;
    char buf[FR_GRAMMAR_MAX_TOKEN];
    for (int32_t i = 0; i < n; i++) {
        size_t l = fr_token_to_piece(v, i, false, NULL, 0);
        if (l <= FR_GRAMMAR_MAX_TOKEN) total += l;
    }
    tv->blob = fr_malloc(total ? total : 1);
    tv->off = fr_malloc((size_t)n * sizeof *tv->off);
    tv->len = fr_calloc((size_t)n, sizeof *tv->len);
    tv->order = fr_malloc((size_t)n * sizeof *tv->order);
    tv->lcp = fr_malloc((size_t)n * sizeof *tv->lcp);
    tv->eog = fr_calloc((size_t)n, sizeof *tv->eog);
    if (!tv->blob || !tv->off || !tv->len || !tv->order || !tv->lcp || !tv->eog) {
        fr_gvocab_destroy(tv);
        return FR_ENOMEM;
    }
    size_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        tv->eog[i] = fr_vocab_is_eog(v, i);
        size_t l = fr_token_to_piece(v, i, false, buf, sizeof buf);
        tv->off[i] = (uint32_t)at;
        if (l == 0 || l > FR_GRAMMAR_MAX_TOKEN || tv->eog[i]) continue;
        memcpy(tv->blob + at, buf, l);
        at += l;
        tv->len[i] = (uint16_t)l;
        tv->order[tv->n_order++] = i;
    }
    qsort_r(tv->order, (size_t)tv->n_order, sizeof *tv->order, cmp_tok, tv);
    for (int32_t k = 0; k < tv->n_order; k++) {
        if (k == 0) {
            tv->lcp[k] = 0;
            continue;
        }
        int32_t a = tv->order[k - 1], b = tv->order[k];
        size_t m = tv->len[a] < tv->len[b] ? tv->len[a] : tv->len[b], j = 0;
        while (j < m && tv->blob[tv->off[a] + j] == tv->blob[tv->off[b] + j]) j++;
        tv->lcp[k] = (uint16_t)j;
    }
    tv->bytes = sizeof *tv + (total ? total : 1) + (size_t)n * (sizeof *tv->off + sizeof *tv->len +
                sizeof *tv->order + sizeof *tv->lcp + sizeof *tv->eog);
    *out = tv;
    return 0;
}

void fr_gvocab_destroy(fr_gvocab *tv) {
    if (!tv) return;
    fr_free(tv->blob);
    fr_free(tv->off);
    fr_free(tv->len);
    fr_free(tv->order);
    fr_free(tv->lcp);
    fr_free(tv->eog);
    fr_free(tv);
}

size_t fr_gvocab_bytes(const fr_gvocab *tv) { return tv->bytes; }
int32_t fr_gvocab_n_tokens(const fr_gvocab *tv) { return tv->n_vocab; }

/* ================= stack sets ================= */

typedef struct sset {
    uint32_t *d;                  /* per stack: its length, then its positions */
    size_t n_d, cap_d;
    uint32_t *off;                /* [n] where each stack's length word is */
    uint64_t *h;                  /* [n] each stack's hash */
    uint32_t n, cap;
    uint32_t *ht;                 /* stack index + 1 */
    uint32_t ht_cap;
    uint64_t key;                 /* sum of mixed stack hashes */
    bool has_empty;
} sset;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t stack_hash(const uint32_t *st, uint32_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ len;
    for (uint32_t i = 0; i < len; i++) h = mix64(h ^ st[i]) + i;
    return h;
}

static void ss_clear(sset *s) {
    s->n_d = 0;
    s->n = 0;
    s->key = 0;
    s->has_empty = false;
    if (s->ht) memset(s->ht, 0, (size_t)s->ht_cap * sizeof *s->ht);
}

static void ss_free(sset *s) {
    fr_free(s->d);
    fr_free(s->off);
    fr_free(s->h);
    fr_free(s->ht);
    memset(s, 0, sizeof *s);
}

static size_t ss_bytes(const sset *s) {
    return s->cap_d * sizeof *s->d + (size_t)s->cap * (sizeof *s->off + sizeof *s->h) +
           (size_t)s->ht_cap * sizeof *s->ht;
}

static int ss_rehash(sset *s, uint32_t cap) {
    uint32_t *ht = fr_calloc(cap, sizeof *ht);
    if (!ht) return FR_ENOMEM;
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t k = (uint32_t)s->h[i] & (cap - 1);
        while (ht[k]) k = (k + 1) & (cap - 1);
        ht[k] = i + 1;
    }
    fr_free(s->ht);
    s->ht = ht;
    s->ht_cap = cap;
    return 0;
}

static const uint32_t *ss_stack(const sset *s, uint32_t i, uint32_t *len) {
    *len = s->d[s->off[i]];
    return s->d + s->off[i] + 1;
}

/* Add a stack unless present.  FR_ETOOLONG past the limit. */
static int ss_add(sset *s, const uint32_t *st, uint32_t len) {
    uint64_t h = stack_hash(st, len);
    if (s->ht_cap) {
        for (uint32_t k = (uint32_t)h & (s->ht_cap - 1); s->ht[k]; k = (k + 1) & (s->ht_cap - 1)) {
            uint32_t i = s->ht[k] - 1, l2;
            if (s->h[i] != h) continue;
            const uint32_t *o = ss_stack(s, i, &l2);
            if (l2 == len && (len == 0 || !memcmp(o, st, len * sizeof *st))) return 0;
        }
    }
    if (s->n >= FR_GRAMMAR_MAX_STACKS)
        return fr_errf(FR_ETOOLONG, "the grammar is too ambiguous (more than %d parse stacks at once)",
                       FR_GRAMMAR_MAX_STACKS);
    if (s->n_d + len + 1 > FR_GRAMMAR_MAX_STATE_WORDS)
        return fr_errf(FR_ETOOLONG, "the grammar is too ambiguous (its parse stacks pass %d positions "
                       "at once)", FR_GRAMMAR_MAX_STATE_WORDS);
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 16;
        uint32_t *off = fr_realloc(s->off, (size_t)cap * sizeof *off);
        if (!off) return FR_ENOMEM;
        s->off = off;
        uint64_t *hh = fr_realloc(s->h, (size_t)cap * sizeof *hh);
        if (!hh) return FR_ENOMEM;
        s->h = hh;
        s->cap = cap;
    }
    if (s->n_d + len + 1 > s->cap_d) {
        size_t cap = s->cap_d ? 2 * s->cap_d : 256;
        while (cap < s->n_d + len + 1) cap *= 2;
        uint32_t *d = fr_realloc(s->d, cap * sizeof *d);
        if (!d) return FR_ENOMEM;
        s->d = d;
        s->cap_d = cap;
    }
    s->off[s->n] = (uint32_t)s->n_d;
    s->d[s->n_d++] = len;
    if (len) memcpy(s->d + s->n_d, st, len * sizeof *st);
    s->n_d += len;
    s->h[s->n] = h;
    s->n++;
    s->key += mix64(h);
    if (len == 0) s->has_empty = true;
    if (2 * s->n > s->ht_cap) return ss_rehash(s, s->ht_cap ? 2 * s->ht_cap : 32);
    uint32_t k = (uint32_t)h & (s->ht_cap - 1);
    while (s->ht[k]) k = (k + 1) & (s->ht_cap - 1);
    s->ht[k] = s->n;
    return 0;
}

/* ================= matching ================= */

/* The work list of expansion: stacks stored as positions then length. */
typedef struct work {
    uint32_t *d;
    size_t n, cap;
    uint32_t *tmp;                /* one popped stack */
    size_t tmp_cap;
} work;

static int work_reserve(work *w, size_t more) {
    if (w->n + more <= w->cap) return 0;
    if (w->n + more > FR_GRAMMAR_MAX_WORK_WORDS)
        return fr_errf(FR_ETOOLONG, "the grammar is too ambiguous (its expansion passes %d positions)",
                       FR_GRAMMAR_MAX_WORK_WORDS);
    size_t cap = w->cap ? 2 * w->cap : 1024;
    while (cap < w->n + more) cap *= 2;
    uint32_t *d = fr_realloc(w->d, cap * sizeof *d);
    if (!d) return FR_ENOMEM;
    w->d = d;
    w->cap = cap;
    return 0;
}

static bool is_end(const fr_grammar *g, uint32_t pos) {
    return g->e[pos].type == E_END || g->e[pos].type == E_ALT;
}

/* Push base[0..n) + (a if not an end) + (b if not an end) onto the work
 * list; stacks deeper than the limit are dropped. */
static int work_push(work *w, const fr_grammar *g, const uint32_t *base, uint32_t n, uint32_t a, uint32_t b) {
    uint32_t len = n + (a != UINT32_MAX && !is_end(g, a)) + (b != UINT32_MAX && !is_end(g, b));
    if (len > FR_GRAMMAR_MAX_DEPTH) return 0;
    int rc = work_reserve(w, len + 1);
    if (rc) return rc;
    if (n) memcpy(w->d + w->n, base, n * sizeof *base);
    w->n += n;
    if (a != UINT32_MAX && !is_end(g, a)) w->d[w->n++] = a;
    if (b != UINT32_MAX && !is_end(g, b)) w->d[w->n++] = b;
    w->d[w->n++] = len;
    return 0;
}

/* Expand everything on the work list into out. */
static int expand(const fr_grammar *g, work *w, sset *out) {
    uint32_t steps = 0;
    while (w->n) {
        if (++steps > FR_GRAMMAR_MAX_WORK)
            return fr_errf(FR_ETOOLONG, "the grammar is too ambiguous (more than %d expansion "
                           "steps for one character)", FR_GRAMMAR_MAX_WORK);
        uint32_t len = w->d[w->n - 1];
        w->n -= 1 + (size_t)len;
        if (len > w->tmp_cap) {
            uint32_t *t = fr_realloc(w->tmp, (size_t)FR_GRAMMAR_MAX_DEPTH * sizeof *t);
            if (!t) return FR_ENOMEM;
            w->tmp = t;
            w->tmp_cap = FR_GRAMMAR_MAX_DEPTH;
        }
        uint32_t *st = w->tmp;
        if (len) memcpy(st, w->d + w->n, len * sizeof *st);
        int rc;
        if (len == 0 || g->e[st[len - 1]].type != E_REF) {
            if ((rc = ss_add(out, st, len))) return rc;
            continue;
        }
        uint32_t top = st[len - 1], r = g->e[top].v;
        for (uint32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++)
            if ((rc = work_push(w, g, st, len - 1, top + 1, g->alts[k]))) return rc;
    }
    return 0;
}

/* Past the character group that starts at pos. */
static uint32_t group_end(const fr_grammar *g, uint32_t pos) {
    pos++;
    while (g->e[pos].type == E_RNG_UPPER || g->e[pos].type == E_CHAR_ALT) pos++;
    return pos;
}

/* Does the group at pos match some code point in [lo, hi]?  (For a
 * negated group: unless one item covers the whole range — permissive.) */
static bool group_match(const fr_grammar *g, uint32_t pos, uint32_t lo, uint32_t hi) {
    const gel *e = g->e;
    if (e[pos].type == E_ANY) return true;
    bool neg = e[pos].type == E_CHAR_NOT;
    do {
        uint32_t a = e[pos].v, b = a;
        if (e[pos + 1].type == E_RNG_UPPER) {
            b = e[pos + 1].v;
            pos += 2;
        } else pos++;
        if (!neg && a <= hi && b >= lo) return true;
        if (neg && a <= lo && b >= hi) return false;
    } while (e[pos].type == E_CHAR_ALT);
    return neg;
}

/* Advance in by code point cp into out. */
static int advance(const fr_grammar *g, const sset *in, uint32_t cp, sset *out, work *w) {
    ss_clear(out);
    w->n = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t len;
        const uint32_t *st = ss_stack(in, i, &len);
        if (len == 0) continue;
        uint32_t top = st[len - 1];
        if (!group_match(g, top, cp, cp)) continue;
        int rc = work_push(w, g, st, len - 1, group_end(g, top), UINT32_MAX);
        if (rc) return rc;
        if (w->n > FR_GRAMMAR_MAX_WORK_WORDS / 2 && (rc = expand(g, w, out))) return rc;
    }
    return expand(g, w, out);
}

/* Could some stack's top match a character whose first bytes give [lo, hi]? */
static bool partial_ok(const fr_grammar *g, const sset *s, uint32_t lo, uint32_t hi) {
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t len;
        const uint32_t *st = ss_stack(s, i, &len);
        if (len && group_match(g, st[len - 1], lo, hi)) return true;
    }
    return false;
}

typedef struct u8st {
    uint32_t val;
    uint32_t rem;                 /* continuation bytes still expected */
    uint32_t min;                 /* the smallest code point of this length */
} u8st;

/* The code points a character begun as *u can still become. */
static bool partial_range(const fr_grammar *g, const sset *in, const u8st *u) {
    uint32_t lo = u->val << (6 * u->rem), hi = lo | ((1u << (6 * u->rem)) - 1);
    if (lo < u->min) lo = u->min;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    return lo <= hi && partial_ok(g, in, lo, hi);
}

enum { STEP_DEAD, STEP_SAME, STEP_NEW };

/* One byte from (in, u): STEP_SAME (the stacks are unchanged, *u
 * updated), STEP_NEW (out holds the new stacks), STEP_DEAD; or a negative
 * error. */
enum { STEP_CP = 3 };

/* The UTF-8 side of one byte: STEP_CP with *cp when it finishes a
 * character, STEP_SAME when it begins or continues one that some stack
 * could still take, STEP_DEAD. */
static int utf8_feed(const fr_grammar *g, const sset *in, u8st *u, uint8_t b, uint32_t *cp) {
    if (u->rem == 0) {
        if (b < 0x80) {
            *cp = b;
            return STEP_CP;
        }
        if (b >= 0xC2 && b <= 0xDF) *u = (u8st){b & 0x1Fu, 1, 0x80};
        else if ((b & 0xF0) == 0xE0) *u = (u8st){b & 0x0Fu, 2, 0x800};
        else if (b >= 0xF0 && b <= 0xF4) *u = (u8st){b & 0x07u, 3, 0x10000};
        else return STEP_DEAD;
        return partial_range(g, in, u) ? STEP_SAME : STEP_DEAD;
    }
    if ((b & 0xC0) != 0x80) return STEP_DEAD;
    u->val = (u->val << 6) | (b & 0x3Fu);
    u->rem--;
    if (u->rem) return partial_range(g, in, u) ? STEP_SAME : STEP_DEAD;
    *cp = u->val;
    if (*cp < u->min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return STEP_DEAD;
    u->val = u->min = 0;
    return STEP_CP;
}

static int step_byte(const fr_grammar *g, const sset *in, u8st *u, uint8_t b, sset *out, work *w) {
    uint32_t cp;
    int r = utf8_feed(g, in, u, b, &cp);
    if (r != STEP_CP) return r;
    int rc = advance(g, in, cp, out, w);
    if (rc) return rc;
    return out->n ? STEP_NEW : STEP_DEAD;
}

/* ================= the matcher ================= */

typedef struct level {
    const sset *set;              /* own, or an earlier level's */
    sset own;
    u8st u;
} level;

/* Within one mask walk, what advancing a state by a character gave:
 * (the state's key and size, the character) → a set kept in the pool
 * (idx), or dead (idx -1).  In a string, every token's next character
 * leads from the same few states, so most advances are found here. */
typedef struct memo_ent {
    uint64_t set_key;
    uint64_t what;                /* which stacks' tops take the character (a
                                     state of at most 64 stacks), else it */
    uint32_t set_n, gen;
    int32_t idx;
} memo_ent;

#define MEMO_CAP 4096               /* entries (a power of two) */
#define POOL_MAX 2048               /* sets kept */
#define POOL_BYTES (1u << 20)       /* their buffers at most (past it, no more are kept) */

typedef struct centry {
    uint64_t key, tick;
    uint64_t *mask;
    int32_t n_allowed;
    bool valid;
} centry;

struct fr_gmask_cache {
    const fr_gvocab *tv;
    centry *e;
    int32_t max, n;
    uint64_t tick;
    size_t words;
};

int fr_gmask_cache_create(const fr_gvocab *tv, size_t max_bytes, fr_gmask_cache **out) {
    *out = NULL;
    fr_gmask_cache *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    c->tv = tv;
    c->words = ((size_t)tv->n_vocab + 63) / 64;
    size_t fit = max_bytes / (c->words * 8 + sizeof(centry));
    c->max = fit < 4 ? 4 : fit > 4096 ? 4096 : (int32_t)fit;
    if (!(c->e = fr_calloc((size_t)c->max, sizeof *c->e))) {
        fr_free(c);
        return FR_ENOMEM;
    }
    *out = c;
    return 0;
}

void fr_gmask_cache_destroy(fr_gmask_cache *c) {
    if (!c) return;
    for (int32_t i = 0; i < c->n; i++) fr_free(c->e[i].mask);
    fr_free(c->e);
    fr_free(c);
}

size_t fr_gmask_cache_bytes(const fr_gmask_cache *c) {
    return sizeof *c + (size_t)c->max * sizeof(centry) + (size_t)c->n * c->words * 8;
}

struct fr_gmatcher {
    fr_grammar *g;
    const fr_gvocab *tv;
    sset cur, tmp[2];
    u8st u;
    work w;
    level *lv;                    /* [FR_GRAMMAR_MAX_TOKEN + 1] */
    fr_gmask_cache *cache;        /* shared, or own_cache */
    fr_gmask_cache *own_cache;
    memo_ent *memo;               /* [MEMO_CAP], allocated at the first walk */
    sset *pool;                   /* [POOL_MAX] */
    int32_t pool_n;
    size_t pool_bytes;
    uint32_t gen;                 /* the walk: memo entries of others are stale */
    fr_gmatcher_stats st;
};

int fr_gmatcher_create(fr_grammar *g, const fr_gvocab *tv, fr_gmask_cache *cache, fr_gmatcher **out) {
    *out = NULL;
    if (cache && cache->tv != tv) return fr_errf(FR_EINVAL, "a mask cache of another vocabulary");
    fr_gmatcher *m = fr_calloc(1, sizeof *m);
    if (!m) return FR_ENOMEM;
    m->g = fr_grammar_ref(g);
    m->tv = tv;
    int rc = FR_ENOMEM;
    if (!cache && (rc = fr_gmask_cache_create(tv, FR_GMATCHER_MASK_BYTES, &m->own_cache))) goto fail;
    m->cache = cache ? cache : m->own_cache;
    m->lv = fr_calloc(FR_GRAMMAR_MAX_TOKEN + 1, sizeof *m->lv);
    rc = FR_ENOMEM;
    if (!m->lv) goto fail;
    /* the start: each alternative of root */
    for (uint32_t k = g->alt_off[g->root]; k < g->alt_off[g->root + 1]; k++)
        if ((rc = work_push(&m->w, g, NULL, 0, g->alts[k], UINT32_MAX))) goto fail;
    if ((rc = expand(g, &m->w, &m->cur))) goto fail;
    *out = m;
    return 0;
fail:
    fr_gmatcher_destroy(m);
    return rc;
}

void fr_gmatcher_destroy(fr_gmatcher *m) {
    if (!m) return;
    ss_free(&m->cur);
    ss_free(&m->tmp[0]);
    ss_free(&m->tmp[1]);
    fr_free(m->w.d);
    fr_free(m->w.tmp);
    if (m->lv)
        for (int i = 0; i <= FR_GRAMMAR_MAX_TOKEN; i++) ss_free(&m->lv[i].own);
    fr_free(m->lv);
    fr_gmask_cache_destroy(m->own_cache);
    if (m->pool)
        for (int32_t i = 0; i < POOL_MAX; i++) ss_free(&m->pool[i]);
    fr_free(m->pool);
    fr_free(m->memo);
    fr_grammar_unref(m->g);
    fr_free(m);
}

size_t fr_gmatcher_bytes(const fr_gmatcher *m) {
    size_t b = sizeof *m + ss_bytes(&m->cur) + ss_bytes(&m->tmp[0]) + ss_bytes(&m->tmp[1]) +
               (m->w.cap + m->w.tmp_cap) * sizeof(uint32_t) +
               (FR_GRAMMAR_MAX_TOKEN + 1) * sizeof(level) +
               (m->own_cache ? fr_gmask_cache_bytes(m->own_cache) : 0) +
               (m->memo ? MEMO_CAP * sizeof *m->memo + POOL_MAX * sizeof *m->pool + m->pool_bytes : 0);
    for (int i = 0; i <= FR_GRAMMAR_MAX_TOKEN; i++) b += ss_bytes(&m->lv[i].own);
    return b;
}

bool fr_gmatcher_accepting(const fr_gmatcher *m) { return m->cur.has_empty && m->u.rem == 0; }

bool fr_gmatcher_done(const fr_gmatcher *m) { return fr_gmatcher_accepting(m) && m->cur.n == 1; }

/* Run the bytes from the current state; *end is the set they lead to
 * (the current one or a tmp).  0, 1 when the grammar refuses them, or a
 * negative error. */
static int run_bytes(fr_gmatcher *m, const char *s, size_t n, const sset **end, u8st *u) {
    const sset *src = &m->cur;
    *u = m->u;
    for (size_t i = 0; i < n; i++) {
        sset *dst = src == &m->tmp[0] ? &m->tmp[1] : &m->tmp[0];
        int r = step_byte(m->g, src, u, (uint8_t)s[i], dst, &m->w);
        if (r < 0) return r;
        if (r == STEP_DEAD) return 1;
        if (r == STEP_NEW) src = dst;
    }
    *end = src;
    return 0;
}

int fr_gmatcher_allows(fr_gmatcher *m, const char *s, size_t n) {
    const sset *src;
    u8st u;
    int rc = run_bytes(m, s, n, &src, &u);
    return rc < 0 ? rc : rc == 0;
}

int fr_gmatcher_accept_bytes(fr_gmatcher *m, const char *s, size_t n) {
    const sset *src;
    u8st u;
    int rc = run_bytes(m, s, n, &src, &u);
    if (rc < 0) return rc;
    if (rc) return fr_errf(FR_EINVAL, "the grammar does not allow this text here");
    if (src != &m->cur) {   /* swap the new stacks in */
        sset t = m->cur;
        m->cur = *(sset *)src;
        *(sset *)src = t;
    }
    m->u = u;
    return 0;
}

int fr_gmatcher_accept_token(fr_gmatcher *m, int32_t id) {
    const fr_gvocab *tv = m->tv;
    if (id < 0 || id >= tv->n_vocab) return fr_errf(FR_EINVAL, "token %d is out of range", (int)id);
    if (tv->eog[id])
        return fr_gmatcher_accepting(m) ? 0
               : fr_errf(FR_EINVAL, "the grammar does not allow the end here");
    if (tv->len[id] == 0) return fr_errf(FR_EINVAL, "token %d has no text the grammar can match", (int)id);
    return fr_gmatcher_accept_bytes(m, tv->blob + tv->off[id], tv->len[id]);
}

static uint64_t state_key(const fr_gmatcher *m) {
    return mix64(m->cur.key ^ mix64(((uint64_t)m->cur.n << 40) ^ ((uint64_t)m->u.rem << 32) ^ m->u.val));
}

/* One byte of a token in the walk: from level a to level b. */
static int walk_step(fr_gmatcher *m, const level *a, level *b, uint8_t byte) {
    b->u = a->u;
    uint32_t cp;
    int r = utf8_feed(m->g, a->set, &b->u, byte, &cp);
    if (r == STEP_SAME) b->set = a->set;
    if (r != STEP_CP) return r;
    const sset *in = a->set;
    /* the result depends on the character only through which stacks take
     * it: characters alike there (most of a string's) share one advance */
    uint64_t what = (uint64_t)cp | (1ULL << 63);
    if (in->n <= 64) {
        what = 0;
        for (uint32_t i = 0; i < in->n; i++) {
            uint32_t len;
            const uint32_t *st = ss_stack(in, i, &len);
            if (len && group_match(m->g, st[len - 1], cp, cp)) what |= 1ULL << i;
        }
        if (!what) return STEP_DEAD;
    }
    uint64_t h = mix64(in->key ^ ((uint64_t)in->n << 32) ^ (what * 0x9E3779B97F4A7C15ULL));
    memo_ent *e = NULL;
    for (uint32_t k = (uint32_t)h & (MEMO_CAP - 1), probes = 0; probes < 8; k = (k + 1) & (MEMO_CAP - 1), probes++) {
        memo_ent *x = &m->memo[k];
        if (x->gen != m->gen) {   /* free: a miss */
            e = x;
            break;
        }
        if (x->set_key == in->key && x->set_n == in->n && x->what == what) {
            if (x->idx < 0) return STEP_DEAD;
            b->set = &m->pool[x->idx];
            return STEP_NEW;
        }
    }
    bool keep = e && m->pool_n < POOL_MAX && m->pool_bytes < POOL_BYTES;
    sset *dst = keep ? &m->pool[m->pool_n] : &b->own;
    size_t before = keep ? ss_bytes(dst) : 0;
    int rc = advance(m->g, in, cp, dst, &m->w);
    if (rc) return rc;
    if (keep) m->pool_bytes += ss_bytes(dst) - before;
    if (e && (keep || dst->n == 0)) {
        *e = (memo_ent){.set_key = in->key, .set_n = in->n, .what = what, .gen = m->gen,
                        .idx = dst->n ? m->pool_n : -1};
        if (keep && dst->n) m->pool_n++;
    }
    if (dst->n == 0) return STEP_DEAD;
    b->set = dst;
    return STEP_NEW;
}

/* The walk over the sorted token texts (see the file's header). */
static int walk(fr_gmatcher *m, uint64_t *mask, int32_t *n_allowed) {
    if (!m->memo) {
        m->memo = fr_calloc(MEMO_CAP, sizeof *m->memo);
        m->pool = fr_calloc(POOL_MAX, sizeof *m->pool);
        if (!m->memo || !m->pool) return FR_ENOMEM;
    }
    if (++m->gen == 0) {   /* wrapped: clear for real */
        memset(m->memo, 0, MEMO_CAP * sizeof *m->memo);
        m->gen = 1;
    }
    m->pool_n = 0;
    const fr_gvocab *tv = m->tv;
    level *lv = m->lv;
    memset(mask, 0, m->cache->words * 8);
    int32_t count = 0;
    lv[0].set = &m->cur;
    lv[0].u = m->u;
    uint32_t valid = 1;                   /* levels [0, valid) hold the previous token's prefix */
    uint32_t dead_at = UINT32_MAX;        /* the depth where the previous token died */
    for (int32_t k = 0; k < tv->n_order; k++) {
        int32_t id = tv->order[k];
        uint32_t lcp = tv->lcp[k], len = tv->len[id];
        const uint8_t *t = (const uint8_t *)tv->blob + tv->off[id];
        if (dead_at <= lcp) continue;     /* shares the dead prefix */
        dead_at = UINT32_MAX;
        if (valid > lcp + 1) valid = lcp + 1;
        uint32_t d = valid;
        for (; d <= len; d++) {
            int r = walk_step(m, &lv[d - 1], &lv[d], t[d - 1]);
            if (r < 0) return r;
            if (r == STEP_DEAD) {
                dead_at = d;
                break;
            }
        }
        valid = d > len ? len + 1 : d;
        if (dead_at != UINT32_MAX) continue;
        mask[id >> 6] |= 1ULL << (id & 63);
        count++;
    }
    if (fr_gmatcher_accepting(m))
        for (int32_t i = 0; i < tv->n_vocab; i++)
            if (tv->eog[i]) {
                mask[i >> 6] |= 1ULL << (i & 63);
                count++;
            }
    *n_allowed = count;
    return 0;
}

int fr_gmatcher_mask(fr_gmatcher *m, const uint64_t **mask, int32_t *n_allowed) {
    fr_gmask_cache *c = m->cache;
    uint64_t key = mix64(m->g->hash ^ state_key(m));
    m->st.masks++;
    c->tick++;
    for (int32_t i = 0; i < c->n; i++)
        if (c->e[i].valid && c->e[i].key == key) {
            c->e[i].tick = c->tick;
            m->st.hits++;
            *mask = c->e[i].mask;
            *n_allowed = c->e[i].n_allowed;
            return 0;
        }
    centry *e;
    if (c->n < c->max) {
        e = &c->e[c->n];
        if (!(e->mask = fr_malloc(c->words * 8))) return FR_ENOMEM;
        c->n++;
    } else {
        e = &c->e[0];
        for (int32_t i = 1; i < c->n; i++)
            if (c->e[i].tick < e->tick) e = &c->e[i];
    }
    e->valid = false;
    double t0 = fr_now_s();
    int rc = walk(m, e->mask, &e->n_allowed);
    m->st.walk_ms += (fr_now_s() - t0) * 1e3;
    if (rc) return rc;
    e->key = key;
    e->valid = true;
    e->tick = c->tick;
    *mask = e->mask;
    *n_allowed = e->n_allowed;
    return 0;
}

void fr_gmatcher_stats_get(const fr_gmatcher *m, fr_gmatcher_stats *out) { *out = m->st; }
