/*
 * vocab.h — tokenizers: SentencePiece BPE ("llama"), byte-level BPE
 * ("gpt2") with llama.cpp's pre-tokenizers, and WordPiece ("bert").
 *
 * A vocab is built from a GGUF file's tokenizer.* keys and owns copies of
 * everything it needs (it does not keep the fr_gguf).  Immutable after
 * load: tokenize/detokenize are thread-safe.
 */
#ifndef FR_ENGINE_VOCAB_H
#define FR_ENGINE_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "frugal/engine.h"

/* The rest of the tokenizer API (tokenize, pieces, the streaming
 * detokenizer, vocabulary queries) is public: frugal/engine.h. */

/* Load the tokenizer of g.  FR_EFORMAT for missing/malformed keys,
 * FR_EUNSUPP (detail names it) for an unknown tokenizer model or
 * pre-tokenizer name, FR_ENOMEM. */
int  fr_vocab_load(const fr_gguf *g, fr_vocab **out);
void fr_vocab_destroy(fr_vocab *v);

#endif
