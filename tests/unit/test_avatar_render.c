/* Unit tests of the local avatar renderer: renders synthetic speech, decodes the MP4
 * it produced with libavformat/libavcodec and looks at the pictures: does the mouth
 * move with the speech, do the eyes blink, are the streams and timings right. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "audio.h"
#include "avatar_backend.h"
#include "face.h"
#include "mp4_writer.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE 512
#define FPS 25
#define MAX_FRAMES 200
/* eSpeak's native rate, so the renderer's resampling is exercised too. */
#define SPEECH_RATE 22050

/* What the test measures in each decoded picture. */
typedef struct {
  int mouth_dark;      /* pixels of the dark mouth opening */
  int eye_white;       /* pixels of the whites of the eyes */
  uint8_t corner[3];   /* RGB of the top-left background */
} frame_probe_t;

typedef struct {
  enum AVCodecID video_codec, audio_codec;
  int width, height;
  int64_t duration_ms;
  int moov_before_mdat;
  size_t frame_count;
  frame_probe_t frames[MAX_FRAMES];
} decoded_t;

/* A read-only view of the MP4 bytes for libavformat. */
typedef struct {
  const uint8_t *data;
  size_t size, pos;
} reader_t;

static int reader_read(void *opaque, uint8_t *buf, int buf_size)
{
  reader_t *r = opaque;
  if (r->pos >= r->size)
    return AVERROR_EOF;
  size_t n = r->size - r->pos < (size_t) buf_size ? r->size - r->pos : (size_t) buf_size;
  memcpy(buf, r->data + r->pos, n);
  r->pos += n;
  return (int) n;
}

static int64_t reader_seek(void *opaque, int64_t offset, int whence)
{
  reader_t *r = opaque;
  if (whence & AVSEEK_SIZE)
    return (int64_t) r->size;
  int64_t base = (whence & 3) == SEEK_CUR ? (int64_t) r->pos : (whence & 3) == SEEK_END ? (int64_t) r->size : 0;
  if (base + offset < 0 || base + offset > (int64_t) r->size)
    return AVERROR(EINVAL);
  r->pos = (size_t) (base + offset);
  return (int64_t) r->pos;
}

static int near_colour(const uint8_t *px, int r, int g, int b, int tolerance)
{
  return abs(px[0] - r) <= tolerance && abs(px[1] - g) <= tolerance && abs(px[2] - b) <= tolerance;
}

/* Regions given for a 512x512 frame and scaled to `size`, wide enough for the
 * head's idle sway. */
static frame_probe_t probe_rgb(const uint8_t *rgb, int stride, int size)
{
  frame_probe_t p = { 0 };
#define AT(v) ((v) * size / SIZE)
  for (int y = AT(255); y < AT(380); y++)
    for (int x = AT(180); x < AT(332); x++)
      p.mouth_dark += near_colour(rgb + y * stride + 3 * x, 89, 23, 33, 35);
  for (int y = AT(170); y < AT(255); y++)
    for (int x = AT(160); x < AT(352); x++) {
      const uint8_t *px = rgb + y * stride + 3 * x;
      p.eye_white += px[0] > 225 && px[1] > 225 && px[2] > 225;
    }
#undef AT
  memcpy(p.corner, rgb + 8 * stride + 3 * 8, 3);
  return p;
}

/* Top-level boxes in order: faststart puts the index (moov) before the media (mdat). */
static int moov_precedes_mdat(const uint8_t *data, size_t size)
{
  size_t pos = 0;
  while (pos + 8 <= size) {
    uint32_t box = (uint32_t) data[pos] << 24 | (uint32_t) data[pos + 1] << 16
                   | (uint32_t) data[pos + 2] << 8 | data[pos + 3];
    if (!memcmp(data + pos + 4, "moov", 4))
      return 1;
    if (!memcmp(data + pos + 4, "mdat", 4) || box < 8)
      return 0;
    pos += box;
  }
  return 0;
}

static void decode_mp4(const uint8_t *data, size_t size, decoded_t *out)
{
  memset(out, 0, sizeof *out);
  out->moov_before_mdat = moov_precedes_mdat(data, size);
  reader_t reader = { data, size, 0 };
  uint8_t *io_buffer = av_malloc(32768);
  assert_non_null(io_buffer);
  AVIOContext *io = avio_alloc_context(io_buffer, 32768, 0, &reader, reader_read, NULL, reader_seek);
  assert_non_null(io);
  AVFormatContext *format = avformat_alloc_context();
  assert_non_null(format);
  format->pb = io;
  assert_int_equal(avformat_open_input(&format, NULL, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(format, NULL) >= 0);
  out->duration_ms = format->duration / 1000;

  int video_index = -1;
  for (unsigned i = 0; i < format->nb_streams; i++) {
    AVCodecParameters *par = format->streams[i]->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
      video_index = (int) i;
      out->video_codec = par->codec_id;
      out->width = par->width;
      out->height = par->height;
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      out->audio_codec = par->codec_id;
    }
  }
  assert_true(video_index >= 0);
  assert_int_equal(out->width, out->height);

  AVCodecParameters *par = format->streams[video_index]->codecpar;
  const AVCodec *codec = avcodec_find_decoder(par->codec_id);
  assert_non_null(codec);
  AVCodecContext *decoder = avcodec_alloc_context3(codec);
  assert_non_null(decoder);
  assert_int_equal(avcodec_parameters_to_context(decoder, par), 0);
  assert_int_equal(avcodec_open2(decoder, codec, NULL), 0);
  struct SwsContext *sws = sws_getContext(par->width, par->height, par->format, par->width,
                                          par->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
  assert_non_null(sws);
  uint8_t *rgb = malloc((size_t) par->width * par->height * 3);
  assert_non_null(rgb);
  AVPacket *packet = av_packet_alloc();
  AVFrame *frame = av_frame_alloc();
  assert_non_null(packet);
  assert_non_null(frame);

  int draining = 0;
  while (!draining) {
    if (av_read_frame(format, packet) < 0) {
      draining = 1;
      assert_int_equal(avcodec_send_packet(decoder, NULL), 0);
    } else {
      int rc = packet->stream_index == video_index ? avcodec_send_packet(decoder, packet) : 0;
      av_packet_unref(packet);
      assert_int_equal(rc, 0);
    }
    while (avcodec_receive_frame(decoder, frame) == 0) {
      uint8_t *planes[1] = { rgb };
      int strides[1] = { par->width * 3 };
      sws_scale(sws, (const uint8_t *const *) frame->data, frame->linesize, 0, par->height, planes, strides);
      if (out->frame_count < MAX_FRAMES)
        out->frames[out->frame_count] = probe_rgb(rgb, strides[0], par->width);
      out->frame_count++;
      av_frame_unref(frame);
    }
  }
  av_frame_free(&frame);
  av_packet_free(&packet);
  free(rgb);
  sws_freeContext(sws);
  avcodec_free_context(&decoder);
  avformat_close_input(&format);
  av_freep(&io->buffer);
  avio_context_free(&io);
}

/* A WAV of `total_ms` at SPEECH_RATE: a loud syllable-like tone in [0, tone_ms), then silence. */
static void make_speech_wav(uint32_t tone_ms, uint32_t total_ms, uint8_t **wav, size_t *wav_size)
{
  size_t count = (size_t) total_ms * SPEECH_RATE / 1000;
  pcm_t pcm = { .samples = calloc(count, sizeof(int16_t)), .count = count, .sample_rate = SPEECH_RATE };
  assert_non_null(pcm.samples);
  size_t tone = (size_t) tone_ms * SPEECH_RATE / 1000;
  for (size_t i = 0; i < tone; i++) {
    double t = (double) i / SPEECH_RATE;
    /* Syllables at 4 Hz, like speech, and never fully silent inside the burst. */
    double envelope = 0.6 + 0.4 * sin(2.0 * M_PI * 4.0 * t);
    pcm.samples[i] = (int16_t) (14000.0 * envelope * sin(2.0 * M_PI * 180.0 * t));
  }
  assert_int_equal(audio_wav_encode(&pcm, wav, wav_size), 0);
  pcm_release(&pcm);
}

static phoneme_t phoneme(const char *symbol, uint32_t start_ms, uint32_t duration_ms)
{
  phoneme_t p = { .start_ms = start_ms, .duration_ms = duration_ms };
  snprintf(p.symbol, sizeof p.symbol, "%s", symbol);
  return p;
}

/* "hello world" as eSpeak might time it, filling the first second. */
static const phoneme_t *hello_world(size_t *count)
{
  static phoneme_t ph[10];
  ph[0] = phoneme("h", 0, 80);      ph[1] = phoneme("@", 80, 120);
  ph[2] = phoneme("l", 200, 80);    ph[3] = phoneme("'oU", 280, 200);
  ph[4] = phoneme("w", 480, 80);    ph[5] = phoneme("'3:", 560, 200);
  ph[6] = phoneme("l", 760, 80);    ph[7] = phoneme("d", 840, 100);
  ph[8] = phoneme("m", 940, 60);    ph[9] = phoneme("_", 1000, 1000);
  *count = 10;
  return ph;
}

static int group_setup(void **state)
{
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  if (!backend) {
    fprintf(stderr, "avatar_local_new: %s: %s\n", err.code, err.message);
    return -1;
  }
  *state = backend;
  return 0;
}

static int group_teardown(void **state)
{
  avatar_backend_t *backend = *state;
  backend->destroy(&backend);
  return 0;
}

static void render_ok(avatar_backend_t *backend, const avatar_input_t *in, avatar_output_t *out)
{
  stage_error_t err = { 0 };
  if (backend->render(backend, in, out, &err) != 0)
    fail_msg("render failed: %s: %s", err.code, err.message);
  assert_non_null(out->video);
  assert_string_equal(out->mime, "video/mp4");
}

static void test_renders_lip_synced_mp4(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  make_speech_wav(1000, 2000, &wav, &wav_size);
  size_t phoneme_count = 0;
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .audio_mime = "audio/wav",
                        .phonemes = hello_world(&phoneme_count), .text = "hello world" };
  in.phoneme_count = phoneme_count;
  avatar_output_t out;
  render_ok(backend, &in, &out);
  assert_int_equal(out.duration_ms, 2000);

  decoded_t *video = malloc(sizeof *video);
  assert_non_null(video);
  decode_mp4(out.video, out.video_size, video);
  assert_int_equal(video->video_codec, AV_CODEC_ID_H264);
  assert_int_equal(video->audio_codec, AV_CODEC_ID_AAC);
  assert_int_equal(video->width, SIZE);
  assert_int_equal(video->height, SIZE);
  assert_true(video->moov_before_mdat);
  assert_int_equal(video->frame_count, 50);
  assert_true(llabs(video->duration_ms - 2000) <= 1000 / FPS);

  /* Speech (first second): the mouth opens and closes; silence: it stays shut. */
  int speech_min = INT32_MAX, speech_max = 0, silence_max = 0;
  for (size_t n = 0; n < 25; n++) {
    speech_min = video->frames[n].mouth_dark < speech_min ? video->frames[n].mouth_dark : speech_min;
    speech_max = video->frames[n].mouth_dark > speech_max ? video->frames[n].mouth_dark : speech_max;
  }
  for (size_t n = 28; n < 50; n++)
    silence_max = video->frames[n].mouth_dark > silence_max ? video->frames[n].mouth_dark : silence_max;
  printf("mouth opening (dark pixels): speech %d..%d, silence max %d\n", speech_min, speech_max, silence_max);
  assert_true(speech_max > 150);
  assert_true(speech_max - speech_min > 120);
  assert_true(silence_max < 40);

  free(video);
  avatar_output_release(&out);
  assert_null(out.video);
  free(wav);
}

static void test_audio_only_lip_sync_and_blinks(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  /* Long enough that the first blink (within 3 s) always falls inside. */
  make_speech_wav(1500, 4000, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .audio_mime = "audio/wav" };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  decoded_t *video = malloc(sizeof *video);
  assert_non_null(video);
  decode_mp4(out.video, out.video_size, video);
  assert_int_equal(video->frame_count, 100);

  int loud_max = 0, quiet_max = 0;
  for (size_t n = 2; n < 36; n++)
    loud_max = video->frames[n].mouth_dark > loud_max ? video->frames[n].mouth_dark : loud_max;
  for (size_t n = 45; n < 100; n++)
    quiet_max = video->frames[n].mouth_dark > quiet_max ? video->frames[n].mouth_dark : quiet_max;
  printf("audio-only mouth opening: loud max %d, quiet max %d\n", loud_max, quiet_max);
  assert_true(loud_max > 400);
  assert_true(quiet_max < 40);

  int white_min = INT32_MAX, white_max = 0;
  for (size_t n = 0; n < video->frame_count; n++) {
    white_min = video->frames[n].eye_white < white_min ? video->frames[n].eye_white : white_min;
    white_max = video->frames[n].eye_white > white_max ? video->frames[n].eye_white : white_max;
  }
  printf("whites of the eyes: %d..%d pixels\n", white_min, white_max);
  assert_true(white_max > 800);
  assert_true(white_min < white_max / 5);

  /* The same job renders the same video: blinks and sway are seeded from it. */
  avatar_output_t again;
  render_ok(backend, &in, &again);
  assert_int_equal(again.video_size, out.video_size);
  assert_memory_equal(again.video, out.video, out.video_size);
  avatar_output_release(&again);

  free(video);
  avatar_output_release(&out);
  free(wav);
}

static void test_character_override(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  make_speech_wav(300, 400, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .character = "leo" };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  decoded_t *video = malloc(sizeof *video);
  assert_non_null(video);
  decode_mp4(out.video, out.video_size, video);
  /* leo's background is warm, ada's (the default) cool. */
  assert_true(video->frames[0].corner[0] > video->frames[0].corner[2]);
  avatar_output_release(&out);

  in.character = "nobody";    /* unknown: falls back to the default, still renders */
  render_ok(backend, &in, &out);
  decode_mp4(out.video, out.video_size, video);
  assert_true(video->frames[0].corner[2] > video->frames[0].corner[0]);
  avatar_output_release(&out);
  free(video);
  free(wav);
}

static void test_environment_settings(void **state)
{
  (void) state;
  setenv("AVATAR_SIZE", "256", 1);
  setenv("AVATAR_FPS", "30", 1);
  setenv("AVATAR_CHARACTER", "leo", 1);
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_CHARACTER");
  assert_non_null(backend);
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  make_speech_wav(300, 400, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  decoded_t *video = malloc(sizeof *video);
  assert_non_null(video);
  decode_mp4(out.video, out.video_size, video);
  assert_int_equal(video->width, 256);
  assert_int_equal(video->frame_count, 12);     /* ceil(0.4 s * 30 fps) */
  assert_true(video->frames[0].corner[0] > video->frames[0].corner[2]);
  free(video);
  avatar_output_release(&out);
  free(wav);
  backend->destroy(&backend);
  assert_null(backend);
}

static void test_garbage_audio_is_bad_audio(void **state)
{
  avatar_backend_t *backend = *state;
  static const uint8_t garbage[] = "this is certainly not an audio file, just some text bytes";
  avatar_input_t in = { .audio = garbage, .audio_size = sizeof garbage, .audio_mime = "audio/wav" };
  avatar_output_t out;
  stage_error_t err = { 0 };
  assert_int_equal(backend->render(backend, &in, &out, &err), -1);
  assert_string_equal(err.code, "bad_audio");
  assert_null(out.video);

  memset(&err, 0, sizeof err);
  in.audio = NULL;
  in.audio_size = 0;
  assert_int_equal(backend->render(backend, &in, &out, &err), -1);
  assert_string_equal(err.code, "bad_audio");
}

static void test_encoder_failures_are_render_errors(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  mp4_settings_t odd = { .width = 511, .height = 512, .fps = FPS, .sample_rate = 24000,
                         .x264_preset = "veryfast", .crf = 23 };
  assert_null(mp4_writer_new(&odd, &err));
  assert_string_equal(err.code, "render_error");

  memset(&err, 0, sizeof err);
  mp4_settings_t bad_preset = odd;
  bad_preset.width = 512;
  bad_preset.x264_preset = "no-such-preset";
  assert_null(mp4_writer_new(&bad_preset, &err));
  assert_string_equal(err.code, "render_error");

  /* A job abandoned half-way (the caller gives up) releases everything. */
  mp4_settings_t good = bad_preset;
  good.x264_preset = "ultrafast";
  mp4_writer_t *writer = mp4_writer_new(&good, &err);
  assert_non_null(writer);
  uint8_t *pixels = calloc((size_t) 512 * 512, 4);
  int16_t samples[4096] = { 0 };
  assert_non_null(pixels);
  for (int n = 0; n < 10; n++)
    assert_int_equal(mp4_writer_add_frame(writer, pixels, 512 * 4, &err), 0);
  assert_int_equal(mp4_writer_add_audio(writer, samples, 4096, &err), 0);
  mp4_writer_destroy(&writer);
  assert_null(writer);
  free(pixels);
}

static double seconds_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Prints, does not assert: figures depend on the machine and the build. */
static void test_print_render_speed(void **state)
{
  avatar_backend_t *backend = *state;
  const double clip_s = 5.0;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  make_speech_wav(4000, 5000, &wav, &wav_size);
  phoneme_t ph[50];
  const char *cycle[] = { "h", "@", "l", "oU", "w", "3:", "m", "a", "f", "i:" };
  for (size_t i = 0; i < 50; i++)
    ph[i] = phoneme(cycle[i % 10], (uint32_t) i * 80, 80);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .phonemes = ph, .phoneme_count = 50 };

  avatar_output_t out;
  double start = seconds_now();
  render_ok(backend, &in, &out);
  double total = seconds_now() - start;

  /* Drawing alone, the same number of frames, to split the total. */
  cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, SIZE, SIZE);
  cairo_t *cr = cairo_create(surface);
  cairo_surface_t *backdrop = face_backdrop_new(face_character_default(), SIZE, SIZE);
  assert_int_equal(cairo_status(cr), CAIRO_STATUS_SUCCESS);
  assert_non_null(backdrop);
  size_t frames = (size_t) (clip_s * FPS);
  start = seconds_now();
  for (size_t n = 0; n < frames; n++) {
    face_state_t face = { .mouth = viseme_pose((viseme_t) (n % VISEME_COUNT)), .blink = (n % 7) / 6.0 };
    face_draw(cr, backdrop, face_character_default(), &face);
    cairo_surface_flush(surface);
  }
  double draw = seconds_now() - start;
  cairo_destroy(cr);
  cairo_surface_destroy(backdrop);
  cairo_surface_destroy(surface);

  printf("render speed %dx%d@%d, %.0f s clip: %.1f s of video per s of wall time "
         "(total %.0f ms: drawing %.0f ms = %.2f ms/frame, decode+encode+mux %.0f ms = %.2f ms/frame), %zu bytes\n",
         SIZE, SIZE, FPS, clip_s, clip_s / total, total * 1000.0, draw * 1000.0,
         draw * 1000.0 / (double) frames, (total - draw) * 1000.0,
         (total - draw) * 1000.0 / (double) frames, out.video_size);
  avatar_output_release(&out);
  free(wav);
}

int main(void)
{
  /* The defaults the assertions are written for, whatever the environment says. */
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_CHARACTER");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_renders_lip_synced_mp4),
    cmocka_unit_test(test_audio_only_lip_sync_and_blinks),
    cmocka_unit_test(test_character_override),
    cmocka_unit_test(test_environment_settings),
    cmocka_unit_test(test_garbage_audio_is_bad_audio),
    cmocka_unit_test(test_encoder_failures_are_render_errors),
    cmocka_unit_test(test_print_render_speed),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
