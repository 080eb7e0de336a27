/* checkpoint.h - a retrain's checkpoint folder, so that a stopped retrain can go on.
 *
 * After every epoch the folder holds the trainer's whole state (epoch-NNN.pt, see
 * train_checkpoint_save()) and state.json: which of those files to resume, the fingerprint
 * of everything that decides the weights, the seed, the validation labels of the split, the
 * scores so far and the history per epoch. A resume refuses a state made with another
 * fingerprint or split. One retrain uses a folder at a time (checkpoint_lock()). Not
 * thread-safe. */
#ifndef STAGES_CHECKPOINT_H
#define STAGES_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHECKPOINT_MAX_EPOCHS 1000

/* What one epoch did. */
struct epoch_stat {
	int epoch;
	double loss, lr, map, seconds, img_per_s;
	int evaluated; /* map was measured */
};

/* What state.json records beside the trainer's own state. */
struct checkpoint_state {
	char fingerprint[65]; /* of the settings, start weights, seed and labelled photos */
	uint64_t seed;
	int seed_random;     /* the seed was drawn, not configured */
	int epoch;           /* epochs finished */
	double baseline_map; /* the starting weights as the nightly run embeds with them */
	double start_map;    /* the network as training started */
	struct epoch_stat hist[CHECKPOINT_MAX_EPOCHS];
	int nhist;
};

/* Make DIR (and its parents) and take an exclusive lock on DIR/lock for as long as the
 * process keeps *FD open (close() it to let go). ERR_FATAL when another retrain holds it. */
int checkpoint_lock(const char *dir, int *fd, struct err *err);

/* 1 when DIR holds the state of an unfinished retrain. */
int checkpoint_exists(const char *dir);

/* After epoch ST->epoch: save TR's state and ST with the N validation labels VAL_LABELS, then
 * drop the previous epoch's file, which the new state no longer names. */
int checkpoint_save(const char *dir, struct trainer *tr, const struct checkpoint_state *st,
                    const char *const *val_labels, size_t n, struct err *err);

/* The seed recorded in DIR (the split needs it before anything else is resumed). */
int checkpoint_read_seed(const char *dir, uint64_t *seed, int *seed_random, struct err *err);

/* Resume from DIR: the state must carry ST->fingerprint and the same N validation labels;
 * then TR gets the saved trainer state and ST the epoch, scores and history. */
int checkpoint_resume(const char *dir, struct trainer *tr, struct checkpoint_state *st,
                      const char *const *val_labels, size_t n, struct err *err);

/* Remove the state and epoch files of DIR (the lock file stays). */
void checkpoint_clear(const char *dir);

/* The history of ST as a JSON array (for the model's records); NULL when out of memory. */
struct cJSON *checkpoint_history_json(const struct checkpoint_state *st);

#ifdef __cplusplus
}
#endif

#endif
