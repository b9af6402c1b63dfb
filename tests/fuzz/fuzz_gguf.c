/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader: parse the input; on
 * success walk every pair (formatting, every getter) and every tensor
 * (touching the first and last byte of its data), hand it all to a
 * writer, then close.  Any read outside the image is a sanitizer report;
 * a broken invariant is a trap.
 */
#include "base/err.h"
#include "engine/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_kv(const fr_gguf *g, int64_t i) {
    char buf[512], key[300];
    fr_gguf_format_value(g, i, buf, sizeof buf, 8);
    fr_gguf_format_value(g, i, buf, 5, 100);
    sink += strlen(buf);
    fr_gguf_str k = fr_gguf_key(g, i);
    if (k.len >= sizeof key || memchr(k.s, 0, (size_t)k.len)) return;
    memcpy(key, k.s, (size_t)k.len);
    key[k.len] = 0;
    if (fr_gguf_find_key(g, key) != i) __builtin_trap();
    uint32_t u32; int64_t i64; uint64_t u64; float f; bool b; fr_gguf_str s;
    int et; uint64_t count; const void *d;
    if (!fr_gguf_get_u32(g, key, &u32)) sink += u32;
    if (!fr_gguf_get_i64(g, key, &i64)) sink += (uint64_t)i64;
    if (!fr_gguf_get_u64(g, key, &u64)) sink += u64;
    if (!fr_gguf_get_f32(g, key, &f)) sink += (uint64_t)(f == f);
    if (!fr_gguf_get_bool(g, key, &b)) sink += b;
    if (!fr_gguf_get_str(g, key, &s) && s.len) sink += (uint8_t)s.s[s.len - 1];
    if (!fr_gguf_get_arr(g, key, &et, &count, &d)) {
        sink += count;
        if (et == FR_GGUF_STRING) {
            for (uint64_t j = 0; j < count && j < 64; j++)
                if (!fr_gguf_get_arr_str(g, key, count - 1 - j, &s) && s.len)
                    sink += (uint8_t)s.s[0] + (uint8_t)s.s[s.len - 1];
            if (fr_gguf_get_arr_str(g, key, count, &s) == 0) __builtin_trap();
        } else if (count) {
            sink += ((const uint8_t *)d)[0];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fr_gguf *g = NULL;
    if (fr_gguf_parse(data, size, "fuzz.gguf", &g) != 0) {
        if (g || !fr_errdetail()[0]) __builtin_trap();
        return 0;
    }
    for (int64_t i = 0; i < fr_gguf_n_kv(g); i++) walk_kv(g, i);
    for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        if (fr_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
    }
    sink += fr_gguf_version(g) + fr_gguf_alignment(g) + fr_gguf_data_offset(g);
    /* Whatever the reader accepts, the writer can take over. */
    fr_gguf_writer *w = NULL;
    if (fr_gguf_writer_create(&w) == 0) {
        if (fr_gguf_writer_copy_kv(w, g, NULL) != 0) __builtin_trap();
        for (int64_t i = 0; i < fr_gguf_n_tensors(g); i++) {
            const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
            if (fr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data))
                __builtin_trap();
        }
        fr_gguf_writer_destroy(w);
    }
    fr_gguf_close(g);
    return 0;
}
