/* counters: a small fixed table under a mutex; counters are bumped a few times per
 * job, so contention is no concern and a hash table would be more code than help. */
#include "counters.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_COUNTERS 256

typedef struct {
  char name[48];
  char label[48];
  uint64_t value;
} counter_t;

static counter_t table[MAX_COUNTERS];
static size_t used;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void counter_add(const char *name, const char *label, uint64_t n)
{
  if (!label)
    label = "";
  pthread_mutex_lock(&lock);
  size_t i = 0;
  while (i < used && (strcmp(table[i].name, name) || strcmp(table[i].label, label)))
    i++;
  if (i == used && used < MAX_COUNTERS) {
    snprintf(table[i].name, sizeof table[i].name, "%s", name);
    snprintf(table[i].label, sizeof table[i].label, "%s", label);
    used++;
  }
  if (i < used)
    table[i].value += n;
  pthread_mutex_unlock(&lock);
}

cJSON *counters_snapshot(void)
{
  cJSON *all = cJSON_CreateObject();
  if (!all)
    return NULL;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < used; i++) {
    cJSON *group = cJSON_GetObjectItemCaseSensitive(all, table[i].name);
    if (!group)
      group = cJSON_AddObjectToObject(all, table[i].name);
    if (group)
      cJSON_AddNumberToObject(group, table[i].label, (double) table[i].value);
  }
  pthread_mutex_unlock(&lock);
  return all;
}
