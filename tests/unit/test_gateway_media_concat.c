/* Unit tests for media_concat and segment_join: streamed answers' segment files
 * joined into the whole answer. The MP4 and WebM segments are real renders of the
 * avatar's video writer (H.264+AAC, VP8+Opus), the WAVs real PCM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libavformat/avformat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"
#include "media_concat.h"
#include "memory_io.h"
#include "segment_join.h"
#include "video_writer.h"

#define RATE 24000
#define FPS 25
#define SIZE 64

/* A WAV of `ms` milliseconds whose samples count up from `first`. */
static uint8_t *make_wav(uint32_t ms, int16_t first, size_t *size)
{
  pcm_t pcm = {.sample_rate = RATE, .count = (size_t) RATE * ms / 1000};
  pcm.samples = calloc(pcm.count, sizeof *pcm.samples);
  assert_non_null(pcm.samples);
  for (size_t i = 0; i < pcm.count; i++)
    pcm.samples[i] = (int16_t) (first + (int16_t) (i % 1000));
  uint8_t *wav = NULL;
  assert_int_equal(audio_wav_encode(&pcm, &wav, size), 0);
  free(pcm.samples);
  return wav;
}

/* A talking-head-like file of `frames` frames with a tone, from the avatar's writer. */
static uint8_t *make_video(video_container_t container, int frames, size_t *size)
{
  video_settings_t settings = {.container = container, .width = SIZE, .height = SIZE,
                               .fps = FPS, .sample_rate = RATE, .x264_preset = "ultrafast",
                               .crf = container == VIDEO_MP4 ? 30 : 30, .threads = 1};
  stage_error_t err = {0};
  video_writer_t *writer = video_writer_new(&settings, &err);
  assert_non_null(writer);
  uint32_t pixels[SIZE * SIZE];
  int16_t samples[RATE / FPS];
  for (int n = 0; n < frames; n++) {
    for (size_t p = 0; p < SIZE * SIZE; p++)
      pixels[p] = 0xff000000u | (uint32_t) (n * 8) << 8;
    assert_int_equal(video_writer_add_frame(writer, (const uint8_t *) pixels, SIZE * 4, &err), 0);
    for (size_t i = 0; i < RATE / FPS; i++)
      samples[i] = (int16_t) (8000 * sin((double) (n * (RATE / FPS) + i) * 0.05));
    assert_int_equal(video_writer_add_audio(writer, samples, RATE / FPS, &err), 0);
  }
  uint8_t *out = NULL;
  assert_int_equal(video_writer_finish(writer, &out, size, &err), 0);
  video_writer_destroy(&writer);
  return out;
}

/* Duration (s), stream count and video packet count of a file in memory. */
static void probe(const uint8_t *data, size_t size, double *seconds, unsigned *streams,
                  int *video_packets)
{
  memory_file_t file = {.data = (uint8_t *) data, .size = size};
  AVIOContext *io = memory_io_new(&file, false);
  AVFormatContext *format = avformat_alloc_context();
  assert_non_null(io);
  assert_non_null(format);
  format->pb = io;
  format->flags |= AVFMT_FLAG_CUSTOM_IO;
  assert_int_equal(avformat_open_input(&format, NULL, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(format, NULL) >= 0);
  *seconds = (double) format->duration / AV_TIME_BASE;
  *streams = format->nb_streams;
  *video_packets = 0;
  AVPacket *packet = av_packet_alloc();
  while (av_read_frame(format, packet) >= 0) {
    if (format->streams[packet->stream_index]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
      (*video_packets)++;
    av_packet_unref(packet);
  }
  av_packet_free(&packet);
  avformat_close_input(&format);
  memory_io_free(&io);
}

static void test_muxer_names(void **state)
{
  (void) state;
  assert_string_equal(media_concat_muxer("j-0.mp4"), "mp4");
  assert_string_equal(media_concat_muxer("j-1.webm"), "webm");
  assert_string_equal(media_concat_muxer("j.wav"), "wav");
  assert_null(media_concat_muxer("j.vtt"));
  assert_null(media_concat_muxer("noextension"));
  assert_null(media_concat_muxer(NULL));
}

static void test_wav_samples_follow_each_other(void **state)
{
  (void) state;
  size_t size_a, size_b, joined_size;
  uint8_t *a = make_wav(500, 0, &size_a), *b = make_wav(250, 3000, &size_b), *joined = NULL;
  media_part_t parts[] = {{a, size_a}, {b, size_b}};
  char error[256] = "";
  assert_int_equal(media_concat(parts, 2, "wav", &joined, &joined_size, error, sizeof error), 0);
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(audio_decode(joined, joined_size, RATE, 0, &pcm, &err), 0);
  assert_int_equal(pcm.count, RATE * 3 / 4);
  assert_int_equal(pcm.samples[0], 0);
  assert_int_equal(pcm.samples[RATE / 2 - 1], (RATE / 2 - 1) % 1000);
  assert_int_equal(pcm.samples[RATE / 2], 3000); /* b starts right where a ends */
  assert_int_equal(pcm.samples[pcm.count - 1], 3000 + (RATE / 4 - 1) % 1000);
  pcm_release(&pcm);
  free(joined);
  free(a);
  free(b);
}

static void join_videos(video_container_t container, const char *muxer)
{
  size_t sizes[3];
  uint8_t *files[3] = {make_video(container, 30, &sizes[0]), make_video(container, 13, &sizes[1]),
                       make_video(container, 50, &sizes[2])};
  media_part_t parts[3];
  for (int i = 0; i < 3; i++)
    parts[i] = (media_part_t) {files[i], sizes[i]};
  uint8_t *joined = NULL;
  size_t joined_size = 0;
  char error[256] = "";
  assert_int_equal(media_concat(parts, 3, muxer, &joined, &joined_size, error, sizeof error), 0);
  double seconds;
  unsigned streams;
  int packets;
  probe(joined, joined_size, &seconds, &streams, &packets);
  assert_int_equal(streams, 2);
  assert_int_equal(packets, 30 + 13 + 50);
  /* 93 frames at 25 fps: 3.72 s, give or take the audio codec's frame */
  assert_true(seconds > 3.6 && seconds < 3.9);
  free(joined);
  for (int i = 0; i < 3; i++)
    free(files[i]);
}

static void test_mp4_segments_join(void **state)
{
  (void) state;
  join_videos(VIDEO_MP4, "mp4");
}

static void test_webm_segments_join(void **state)
{
  (void) state;
  join_videos(VIDEO_WEBM, "webm");
}

static void test_mismatched_and_broken_parts_are_refused(void **state)
{
  (void) state;
  size_t wav_size, video_size;
  uint8_t *wav = make_wav(100, 0, &wav_size);
  uint8_t *video = make_video(VIDEO_MP4, 5, &video_size);
  uint8_t *out = (uint8_t *) "untouched";
  size_t out_size = 7;
  char error[256] = "";
  media_part_t mixed[] = {{video, video_size}, {wav, wav_size}};
  assert_int_equal(media_concat(mixed, 2, "mp4", &out, &out_size, error, sizeof error), -1);
  assert_non_null(strstr(error, "other streams"));
  assert_null(out);
  assert_int_equal(out_size, 0);

  const uint8_t garbage[] = "this is not a media file at all, just words";
  media_part_t broken[] = {{video, video_size}, {garbage, sizeof garbage}};
  assert_int_equal(media_concat(broken, 2, "mp4", &out, &out_size, error, sizeof error), -1);
  assert_non_null(strstr(error, "part 1"));
  media_part_t truncated[] = {{video, video_size}, {video, video_size / 3}};
  int rc = media_concat(truncated, 2, "mp4", &out, &out_size, error, sizeof error);
  if (rc == 0)
    free(out); /* a cut file may still hold whole packets: no crash, no leak */
  assert_int_equal(media_concat(mixed, 0, "mp4", &out, &out_size, error, sizeof error), -1);
  free(wav);
  free(video);
}

/* segment_join over a real media store: a job's three segments become one file. */
static void test_segment_join_writes_the_whole_answer(void **state)
{
  (void) state;
  char dir[] = "/tmp/test-segment-join-XXXXXX";
  assert_non_null(mkdtemp(dir));
  media_store_t *media = media_store_new(dir, 3600);
  assert_non_null(media);
  cJSON *job = cJSON_CreateObject();
  cJSON_AddStringToObject(job, "job_id", "jobabc");
  cJSON_AddNumberToObject(job, "segment_count", 3);
  cJSON *segments = cJSON_AddArrayToObject(job, "segments");
  for (int i = 2; i >= 0; i--) { /* listed in any order */
    size_t video_size, wav_size;
    uint8_t *video = make_video(VIDEO_MP4, 10 + i, &video_size);
    uint8_t *wav = make_wav(400, (int16_t) (i * 100), &wav_size);
    char name[64], url[80];
    cJSON *segment = cJSON_CreateObject();
    cJSON_AddNumberToObject(segment, "index", i);
    snprintf(name, sizeof name, "jobabc-%d.mp4", i);
    assert_int_equal(media_store_write(media, name, video, video_size), 0);
    snprintf(url, sizeof url, "/media/%s", name);
    cJSON_AddStringToObject(segment, "video_url", url);
    snprintf(name, sizeof name, "jobabc-%d.wav", i);
    assert_int_equal(media_store_write(media, name, wav, wav_size), 0);
    snprintf(url, sizeof url, "/media/%s", name);
    cJSON_AddStringToObject(segment, "audio_url", url);
    cJSON_AddItemToArray(segments, segment);
    free(video);
    free(wav);
  }
  joined_answer_t answer;
  char error[256] = "";
  assert_int_equal(segment_join(media, job, &answer, error, sizeof error), 0);
  assert_string_equal(answer.video_url, "/media/jobabc.mp4");
  assert_string_equal(answer.audio_url, "/media/jobabc.wav");
  int fd;
  uint64_t size;
  assert_int_equal(media_store_open(media, "jobabc.wav", &fd, &size), 0);
  uint8_t *wav = malloc(size);
  assert_non_null(wav);
  assert_int_equal(pread(fd, wav, size, 0), (ssize_t) size);
  close(fd);
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(audio_decode(wav, size, RATE, 0, &pcm, &err), 0);
  assert_int_equal(pcm.count, 3 * RATE * 400 / 1000); /* three 0.4 s parts */
  assert_int_equal(pcm.samples[RATE * 400 / 1000], 100); /* segment 1 follows segment 0 */
  pcm_release(&pcm);
  free(wav);

  /* One segment is the whole answer: its files are used as they are. */
  cJSON_SetNumberValue(cJSON_GetObjectItem(job, "segment_count"), 1);
  assert_int_equal(segment_join(media, job, &answer, error, sizeof error), 0);
  assert_string_equal(answer.video_url, "/media/jobabc-0.mp4");

  /* A segment whose file is gone, or a job without segments, is an error. */
  cJSON_SetNumberValue(cJSON_GetObjectItem(job, "segment_count"), 4);
  assert_int_equal(segment_join(media, job, &answer, error, sizeof error), -1);
  assert_non_null(strstr(error, "segment 3"));
  cJSON_DeleteItemFromObject(job, "segments");
  assert_int_equal(segment_join(media, job, &answer, error, sizeof error), -1);
  cJSON_Delete(job);
  media_store_destroy(&media);
  char command[128];
  snprintf(command, sizeof command, "rm -rf %s", dir);
  assert_int_equal(system(command), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_muxer_names),
    cmocka_unit_test(test_wav_samples_follow_each_other),
    cmocka_unit_test(test_mp4_segments_join),
    cmocka_unit_test(test_webm_segments_join),
    cmocka_unit_test(test_mismatched_and_broken_parts_are_refused),
    cmocka_unit_test(test_segment_join_writes_the_whole_answer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
