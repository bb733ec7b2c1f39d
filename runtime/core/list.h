/* Intrusive doubly linked list, in the spirit of libuv's QUEUE: an object
 * embeds a node, so linking never allocates and unlinking is O(1). */
#ifndef LUNET_LIST_H
#define LUNET_LIST_H

#include <stddef.h>

struct lunet_list {
  struct lunet_list *prev;
  struct lunet_list *next;
};

#define lunet_container_of(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

static inline void lunet_list_init(struct lunet_list *head) {
  head->prev = head;
  head->next = head;
}

static inline int lunet_list_empty(const struct lunet_list *head) {
  return head->next == head;
}

static inline void lunet_list_push(struct lunet_list *head,
                                   struct lunet_list *node) {
  node->prev = head->prev;
  node->next = head;
  head->prev->next = node;
  head->prev = node;
}

/* Leaves the node self-linked so a second remove is harmless. */
static inline void lunet_list_remove(struct lunet_list *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node;
  node->next = node;
}

#endif
