/*
 * quantize.h — weight quantizers: one row of f32 → one row of a ggml type,
 * with llama.cpp's reference algorithms (quantize_row_*_ref, no importance
 * matrix), so that files written with them load in llama.cpp and come out
 * as close as possible to what llama-quantize writes.
 *
 * These are offline quantizers (used by `frugal quantize`): they favour
 * fidelity over speed, and the K-quants search for their scales.  The
 * activation quantizers of the forward pass live in the kernels table
 * (kernels.h), not here.
 */
#ifndef FR_KERNELS_QUANTIZE_H
#define FR_KERNELS_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

/* True when fr_quantize_row can write type: F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K. */
bool fr_quantize_supported(int type);

/* Quantize n floats at src into dst (fr_type_row_size(type, n) bytes).
 * n must be a positive multiple of the type's block size.  Returns 0,
 * FR_EUNSUPP for a type it cannot write, FR_EINVAL for a bad n (with
 * detail).  Pure function of its arguments: thread-safe. */
int fr_quantize_row(int type, const float *src, void *dst, int64_t n);

#endif
