/* audio_header: how long an upload says it is, read from its container
 * header without decoding anything, so the gateway can refuse a recording
 * that claims to last hours before it travels the pipeline. Only formats that
 * state a duration up front are read: WAV (data size / byte rate) and WebM or
 * Matroska (Segment Info Duration; the browser's MediaRecorder leaves it out).
 * For everything else the stt stage measures the decoded audio itself. */
#ifndef GATEWAY_AUDIO_HEADER_H
#define GATEWAY_AUDIO_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "upload.h"

/* The duration in milliseconds that the header of `data` (audio of `family`)
 * claims, or -1 when it states none (other families, streaming WAV sizes,
 * WebM without Duration, a header that cannot be read). Claims beyond a
 * thousand years are clamped there. Never reads past `size`. */
int64_t audio_header_claimed_ms(audio_family_t family, const uint8_t *data, size_t size);

#endif
