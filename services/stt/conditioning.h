/* conditioning: makes any upload look alike to the recognizer. Browsers, phones and
 * files arrive at any level, with the DC offset of a cheap microphone, and with
 * seconds of room noise before and after the question; the acoustic model was
 * trained on close-talk speech at a normal level. (Rates of 8-48 kHz and stereo are
 * already handled by audio_decode, which mixes down and resamples.) */
#ifndef STT_CONDITIONING_H
#define STT_CONDITIONING_H

#include "speech.h"

/* In place: removes the DC offset, trims leading and trailing silence (keeping a
 * short margin, so the decoder still sees the onset), and scales the level so the
 * loudest speech peaks near -6 dBFS, amplifying by at most 30 dB so a quiet room is
 * not turned into loud noise, then adds a faint, seeded pink-noise floor (-44 dB under
 * that peak) so digitally silent gaps look like a recording. Does nothing to audio
 * shorter than 100 ms. */
void stt_condition(pcm_t *pcm);

/* Fills samples[0, count) with that noise floor alone, as stt_condition adds it. */
void stt_noise_floor(int16_t *samples, size_t count);

#endif
