/* queue.h - a bounded blocking queue of pointers joining two stages.
 *
 * Producers block while the queue is full, consumers while it is empty, so
 * memory stays bounded by the capacity whatever the input size. The queue
 * closes when its last producer says it is done; queue_abort() wakes every
 * waiter and makes every later call fail (used when the run must stop). */
#ifndef PIPELINE_QUEUE_H
#define PIPELINE_QUEUE_H

#include <stddef.h>

struct queue;

/* A queue holding at most CAP pointers, fed by NPRODUCERS producers.
 * Returns NULL when out of memory. Free with queue_free(). */
struct queue *queue_new(size_t cap, int nproducers);

/* Append P, waiting for room. Returns 0, or -1 when the queue was aborted. */
int queue_push(struct queue *q, void *p);

/* Take the oldest pointer into *P, waiting for one. Returns 1 when it got one,
 * 0 when the queue is closed and empty, -1 when aborted. */
int queue_pop(struct queue *q, void **p);

/* One producer is finished; the queue closes when all are. */
void queue_producer_done(struct queue *q);

void queue_abort(struct queue *q);

/* Take a pointer left in Q whatever its state, without waiting (to free what
 * an aborted run left behind). Returns 1 when it got one, 0 when empty. */
int queue_steal(struct queue *q, void **p);

/* The queue must have no waiters left. Pointers still in it are not freed. */
void queue_free(struct queue *q);

#endif
