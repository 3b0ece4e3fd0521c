/* fake_speech: speech audio for fake TTS APIs, spoken by the espeak-ng program
 * (ESPEAK_NG, else "espeak-ng" on PATH) and resampled with common/audio.h. */
#ifndef FAKE_SPEECH_H
#define FAKE_SPEECH_H

#include <stddef.h>
#include <stdint.h>

/* Speaks `text` into a 16-bit mono WAV file at `sample_rate`. Returns 0 and a malloc'd
 * file in *wav (caller frees), or -1 when espeak-ng fails or memory runs out. */
int fake_speak_wav(const char *text, int sample_rate, uint8_t **wav, size_t *wav_size);

#endif
