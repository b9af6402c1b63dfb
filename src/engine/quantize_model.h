/*
 * quantize_model.h — rewrite a GGUF model with quantized weights, as
 * llama-quantize does (no importance matrix).
 *
 * The output keeps every key/value of the input, appends
 * general.quantization_version = 2 and general.file_type, and orders the
 * tensors as llama-quantize does (by block number, then name), so that
 * for the types whose quantizers match llama.cpp the file is the one
 * llama-quantize writes, byte for byte.  Each tensor's type is chosen as llama-quantize chooses it for the
 * requested file type (see fr_quantize_tensor_type), and the weights are
 * quantized with kernels/quantize.h, which reproduces llama.cpp's reference
 * quantizers byte for byte.
 */
#ifndef FR_ENGINE_QUANTIZE_MODEL_H
#define FR_ENGINE_QUANTIZE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called once per tensor after it is converted (from the calling thread). */
typedef void (*fr_quantize_progress_fn)(void *ud, const char *name, int from_type,
                                        int to_type, size_t bytes_in, size_t bytes_out);

typedef struct fr_quantize_params {
    int type;             /* default type of 2-D weights (kernels/types.h id) */
    int mix;              /* FR_QMIX_*: llama.cpp's per-tensor mix, or none */
    int output_type;      /* output.weight (or tied token_embd); -1 = automatic */
    int embd_type;        /* token_embd.weight; -1 = automatic */
    int n_threads;        /* quantizing threads; <= 0 means 1 */
    fr_quantize_progress_fn progress;   /* may be NULL */
    void *progress_ud;
} fr_quantize_params;

enum {
    FR_QMIX_NONE = 0,     /* every 2-D weight gets `type` (output rule aside) */
    FR_QMIX_K_S,          /* plain Q4_K/Q5_K: file_type 14/16, no per-layer mix */
    FR_QMIX_K_M,          /* Q4_K_M / Q5_K_M: attn_v, ffn_down Q6_K where
                             use_more_bits; attn_qkv one step up */
};

/* Fill p from a TYPE name: q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k q4_k_m
 * q5_k_m f16 bf16 f32 (case-insensitive); other fields get their defaults
 * (-1, -1, 1 thread, no callback).  FR_EINVAL for an unknown name. */
int fr_quantize_params_init(fr_quantize_params *p, const char *type_name);

/* llama.cpp's general.file_type (llama_ftype) for p. */
uint32_t fr_quantize_ftype(const fr_quantize_params *p);

/* The type the tensor `name` (n_dims dims, rows of ne0 elements, source
 * type src_type) gets under p.  has_output: the model has output.weight
 * (else token_embd.weight is the output).  i_layer/n_layer: the tensor's
 * rank among its kind (attn_v, ffn_down) and their count, for the K_M mix.
 * Pure function. */
int fr_quantize_tensor_type(const fr_quantize_params *p, const char *name, int n_dims,
                            int64_t ne0, int src_type, bool has_output, int i_layer,
                            int n_layer);

/* Quantize the model at in into out (written as out.tmp~ then renamed).
 * Returns 0; FR_ENOENT/FR_EIO/FR_EFORMAT from reading in; FR_EUNSUPP when
 * a tensor's source type is not f32/f16/bf16 or p asks for a type the
 * quantizers cannot write; FR_EINVAL for bad params; FR_ENOMEM; FR_EIO
 * writing out.  The detail (fr_errdetail) names the file and tensor.
 * Memory: the output tensors are held until the file is saved (about the
 * output size) plus one f32 row per thread; the input is mapped. */
int fr_quantize_model(const char *in, const char *out, const fr_quantize_params *p);

#endif
