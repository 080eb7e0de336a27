/* rng.h - a small seeded random generator (xoshiro256**), so that training
 * draws the same numbers for the same seed on every machine and C library.
 *
 * One struct rng per stream; not thread-safe (give each thread its own).
 * Streams for a (seed, epoch, batch) are made with rng_derive(), so that a
 * resumed run draws what an uninterrupted one would have. */
#ifndef PIPELINE_RNG_H
#define PIPELINE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t s[4];
};

/* Seed R from SEED (any value, 0 included). */
void rng_seed(struct rng *r, uint64_t seed);

/* A seed for the stream named by SEED and the keys A and B (for example the
 * epoch and the batch number): different keys give unrelated streams. */
uint64_t rng_derive(uint64_t seed, uint64_t a, uint64_t b);

uint64_t rng_next(struct rng *r);

/* Uniform in [0, 1), 53 random bits. */
double rng_uniform(struct rng *r);

/* Uniform in [lo, hi). */
double rng_range(struct rng *r, double lo, double hi);

/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t rng_below(struct rng *r, uint64_t n);

/* Fisher-Yates shuffle of N ints. */
void rng_shuffle(struct rng *r, int *v, size_t n);

#endif
