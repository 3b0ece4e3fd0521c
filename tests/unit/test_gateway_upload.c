/* Unit tests of gateway/upload: bounded buffers, Content-Type families,
 * magic-byte sniffing and UTF-8 checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "upload.h"

static void test_buffer_limit(void **state)
{
  (void) state;
  upload_buffer_t buffer;
  upload_buffer_init(&buffer, 100000);
  uint8_t chunk[30000];
  memset(chunk, 7, sizeof chunk);
  for (int i = 0; i < 3; i++)
    assert_int_equal(upload_buffer_append(&buffer, chunk, sizeof chunk), 0);
  assert_int_equal(buffer.size, 90000);
  assert_false(buffer.overflowed);
  assert_int_equal(upload_buffer_append(&buffer, chunk, sizeof chunk), -1);
  assert_true(buffer.overflowed);
  assert_int_equal(buffer.size, 90000);
  assert_true(buffer.capacity <= 100000);
  /* Once over, even a small append is refused: the body is already too big. */
  assert_int_equal(upload_buffer_append(&buffer, chunk, 1), -1);
  upload_buffer_free(&buffer);
  assert_null(buffer.data);

  upload_buffer_init(&buffer, 10);
  assert_int_equal(upload_buffer_append(&buffer, chunk, 10), 0);
  assert_int_equal(upload_buffer_append(&buffer, chunk, 0), 0);
  assert_int_equal(upload_buffer_append(&buffer, chunk, 1), -1);
  upload_buffer_free(&buffer);
}

static void test_families(void **state)
{
  (void) state;
  assert_int_equal(upload_audio_family("audio/webm"), AUDIO_WEBM);
  assert_int_equal(upload_audio_family("audio/webm;codecs=opus"), AUDIO_WEBM);
  assert_int_equal(upload_audio_family("Audio/WebM; codecs=\"opus\""), AUDIO_WEBM);
  assert_int_equal(upload_audio_family("audio/ogg;codecs=opus"), AUDIO_OGG);
  assert_int_equal(upload_audio_family("audio/wav"), AUDIO_WAV);
  assert_int_equal(upload_audio_family("audio/x-wav"), AUDIO_WAV);
  assert_int_equal(upload_audio_family("audio/wave"), AUDIO_WAV);
  assert_int_equal(upload_audio_family("audio/mpeg"), AUDIO_MPEG);
  assert_int_equal(upload_audio_family("audio/mp4"), AUDIO_MP4);
  assert_int_equal(upload_audio_family("application/octet-stream"), AUDIO_UNDECLARED);
  assert_int_equal(upload_audio_family(NULL), AUDIO_UNDECLARED);
  assert_int_equal(upload_audio_family("text/plain"), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_audio_family("audio/webmx"), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_audio_family("video/mp4"), AUDIO_UNSUPPORTED);
  assert_true(upload_type_is("multipart/form-data; boundary=x", "multipart/form-data"));
  assert_false(upload_type_is("multipart/form-datax", "multipart/form-data"));
  assert_string_equal(upload_family_mime(AUDIO_OGG), "audio/ogg");
}

static void test_sniffing(void **state)
{
  (void) state;
  const uint8_t webm[] = {0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42};
  const uint8_t ogg[] = "OggS\0\2";
  const uint8_t wav[] = "RIFF\x24\0\0\0WAVEfmt ";
  const uint8_t id3[] = "ID3\3\0";
  const uint8_t mp3_frame[] = {0xFF, 0xFB, 0x90, 0x64};
  const uint8_t mp4[] = {0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'M', '4', 'A', ' '};
  const uint8_t text[] = "hello, this is not audio";
  const uint8_t riff_avi[] = "RIFF\x24\0\0\0AVI LIST";
  const uint8_t bad_sync[] = {0xFF, 0xE9}; /* reserved MPEG version */
  assert_int_equal(upload_sniff(webm, sizeof webm), AUDIO_WEBM);
  assert_int_equal(upload_sniff(ogg, sizeof ogg), AUDIO_OGG);
  assert_int_equal(upload_sniff(wav, sizeof wav), AUDIO_WAV);
  assert_int_equal(upload_sniff(id3, sizeof id3), AUDIO_MPEG);
  assert_int_equal(upload_sniff(mp3_frame, sizeof mp3_frame), AUDIO_MPEG);
  assert_int_equal(upload_sniff(mp4, sizeof mp4), AUDIO_MP4);
  assert_int_equal(upload_sniff(text, sizeof text), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_sniff(riff_avi, sizeof riff_avi), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_sniff(bad_sync, sizeof bad_sync), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_sniff(webm, 3), AUDIO_UNSUPPORTED);
  assert_int_equal(upload_sniff(webm, 0), AUDIO_UNSUPPORTED);

  assert_true(upload_sniff_matches(AUDIO_WEBM, webm, sizeof webm));
  assert_false(upload_sniff_matches(AUDIO_WEBM, ogg, sizeof ogg));
  assert_false(upload_sniff_matches(AUDIO_WAV, text, sizeof text));
  assert_true(upload_sniff_matches(AUDIO_UNDECLARED, mp4, sizeof mp4));
  assert_false(upload_sniff_matches(AUDIO_UNDECLARED, text, sizeof text));
}

static void test_utf8(void **state)
{
  (void) state;
  assert_true(upload_text_is_utf8("plain ascii"));
  assert_true(upload_text_is_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  assert_false(upload_text_is_utf8("\xC3"));              /* truncated */
  assert_false(upload_text_is_utf8("\xC0\xAF"));          /* overlong '/' */
  assert_false(upload_text_is_utf8("\xED\xA0\x80"));      /* surrogate */
  assert_false(upload_text_is_utf8("\xF4\x90\x80\x80"));  /* past U+10FFFF */
  assert_false(upload_text_is_utf8("\xFF"));
  assert_false(upload_text_is_utf8("ok\x80"));
  assert_int_equal(upload_utf8_length("caf\xC3\xA9"), 4);
  assert_int_equal(upload_utf8_length("\xF0\x9F\x98\x80!"), 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_buffer_limit),
    cmocka_unit_test(test_families),
    cmocka_unit_test(test_sniffing),
    cmocka_unit_test(test_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
