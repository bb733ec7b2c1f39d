/* TLS session ticket keys for every worker: the supervisor makes them and
 * hands the same ones to each worker as it starts and at each rotation,
 * so a session resumes on whichever worker the kernel gives the client
 * (SO_REUSEPORT spreads conns of one client over all of them). */
#include <string.h>

#include "log.h"
#include "supervisor_internal.h"

#define ROTATE_MS (12 * 3600 * 1000ULL) /* the previous key lives as long */

static void send_keys(struct lunet_worker_slot *w) {
  struct lunet_supervisor *sup = w->sup;
  if (w->pid == 0 || sup->ticket_keys_set == 0) return;
  lunet_channel_send(&w->ch, LUNET_FRAME_TICKET_KEYS,
                     (const char *)sup->ticket_keys,
                     (size_t)sup->ticket_keys_set * LUNET_TLS_TICKET_KEY_SIZE,
                     NULL, 0);
}

/* The current key becomes the previous one. */
static int rotate(struct lunet_supervisor *sup, uint64_t now) {
  unsigned char fresh[LUNET_TLS_TICKET_KEY_SIZE];
  if (lunet_tls_ticket_key_new(fresh) < 0) {
    lunet_log(LUNET_LOG_WARN, "tls ticket keys not rotated", "error",
              "RAND_bytes failed", NULL);
    return -1;
  }
  memcpy(sup->ticket_keys[1], sup->ticket_keys[0], sizeof fresh);
  memcpy(sup->ticket_keys[0], fresh, sizeof fresh);
  sup->ticket_keys_set = sup->ticket_keys_set ? 2 : 1;
  sup->ticket_keys_ms = now;
  return 0;
}

void lunet__sup_tickets_send(struct lunet_worker_slot *w) {
  struct lunet_supervisor *sup = w->sup;
  if (sup->ticket_keys_set == 0) rotate(sup, uv_now(&sup->loop));
  send_keys(w);
}

void lunet__sup_tickets_tick(struct lunet_supervisor *sup, uint64_t now) {
  if (sup->ticket_keys_set == 0 || now - sup->ticket_keys_ms < ROTATE_MS)
    return;
  if (rotate(sup, now) < 0) return;
  for (int i = 0; i < sup->nworkers; i++) send_keys(&sup->slots[i]);
}
