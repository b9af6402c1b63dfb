/*
 * chat.h — chat templates: chatml, llama-2 and llama-3, recognised from the
 * model's tokenizer.chat_template as llama.cpp's simple formatter does
 * (GGUF.md §6); chatml when the file has none.
 */
#ifndef FR_ENGINE_CHAT_H
#define FR_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "frugal/engine.h"

/* The chat-template API is public: frugal/engine.h. */

#endif
