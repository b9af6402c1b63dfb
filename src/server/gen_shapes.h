/*
 * gen_shapes.h — OpenAI's request shapes for gen.c (gen_shapes.c says
 * what each one does).
 */
#ifndef FR_SERVER_GEN_SHAPES_H
#define FR_SERVER_GEN_SHAPES_H

#include "server/server_int.h"

#define FR_GEN_FP_LEN 16

/* "PREFIX-" and 24 random characters into out. */
void fr__gen_new_id(const char *prefix, char *out, size_t cap);
/* "fp_" and 10 hex digits from the build and the model file's tag. */
void fr__gen_fingerprint(uint64_t file_tag, char out[FR_GEN_FP_LEN]);
/* Log (debug) every field of b's object that the generation routes do not
 * know; route names the route in the line. */
void fr__gen_log_unknown(const fr_body *b, const char *route);
/* "prompt" of a text completion: q->prompt, q->prompt_ids, or with
 * several prompts q->prompts / prompts_ids / prompts_n_ids [n_prompts].
 * 0, FR_REPLIED (400 naming prompt), FR_ENOMEM. */
int fr__gen_parse_prompts(const fr_body *b, fr_gen_req *q);
/* "n" and "echo" (text completions) into q. */
int fr__gen_parse_shapes(const fr_body *b, fr_gen_req *q);
/* The 400 context_length_exceeded of a prompt of n_tokens. FR_REPLIED. */
int fr__gen_too_long(fr_req *rq, bool chat, int32_t n_ctx, int32_t n_tokens);

#endif
