/* queue.c - bounded ring buffer with a mutex and two condition variables. */
#include "queue.h"

#include <pthread.h>
#include <stdlib.h>

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_full, not_empty;
	void **ring;
	size_t cap, head, len;
	int producers;
	int aborted;
};

struct queue *queue_new(size_t cap, int nproducers)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (!q || cap == 0 || !(q->ring = calloc(cap, sizeof(*q->ring)))) {
		free(q);
		return NULL;
	}
	q->cap = cap;
	q->producers = nproducers;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_full, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	return q;
}

int queue_push(struct queue *q, void *p)
{
	int ret = -1;

	pthread_mutex_lock(&q->lock);
	while (q->len == q->cap && !q->aborted)
		pthread_cond_wait(&q->not_full, &q->lock);
	if (!q->aborted) {
		q->ring[(q->head + q->len) % q->cap] = p;
		q->len++;
		pthread_cond_signal(&q->not_empty);
		ret = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

int queue_pop(struct queue *q, void **p)
{
	int ret;

	pthread_mutex_lock(&q->lock);
	while (q->len == 0 && q->producers > 0 && !q->aborted)
		pthread_cond_wait(&q->not_empty, &q->lock);
	if (q->aborted) {
		ret = -1;
	} else if (q->len == 0) {
		ret = 0;
	} else {
		*p = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		pthread_cond_signal(&q->not_full);
		ret = 1;
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

void queue_producer_done(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	if (q->producers > 0 && --q->producers == 0)
		pthread_cond_broadcast(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

void queue_abort(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->aborted = 1;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

int queue_steal(struct queue *q, void **p)
{
	int ret = 0;

	pthread_mutex_lock(&q->lock);
	if (q->len) {
		*p = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		ret = 1;
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->not_empty);
	free(q->ring);
	free(q);
}
