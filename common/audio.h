/* audio: decoding uploads and speech files to PCM (FFmpeg's libraries), WAV writing. */
#ifndef AUDIO_H
#define AUDIO_H

#include "speech.h"
#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

/* Decodes any container/codec FFmpeg knows (WebM/Opus, Ogg, WAV, MP3, MP4/AAC, ...)
 * from memory, mixes to mono and resamples to `sample_rate`. Refuses audio longer than
 * `max_ms` (0 = no limit) before decoding all of it.
 * Returns 0 and fills `out` (caller releases with pcm_release), or -1 with `err` set:
 * code "bad_audio" (cannot be decoded, no audio stream) or "audio_too_long". */
int audio_decode(const uint8_t *data, size_t size, int sample_rate, uint32_t max_ms,
                 pcm_t *out, stage_error_t *err);

/* Encodes `pcm` as a 16-bit mono RIFF/WAVE file. Returns 0 and a malloc'd buffer
 * in *out (caller frees), or -1 when out of memory. */
int audio_wav_encode(const pcm_t *pcm, uint8_t **out, size_t *out_size);

#endif
