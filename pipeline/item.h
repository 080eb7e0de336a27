/* item.h - one photo as it moves through the stages (the batch type).
 *
 * Every field is bounded; the source fills the identity fields, later stages
 * fill the rest. A failed item keeps flowing so that the store records it. */
#ifndef PIPELINE_ITEM_H
#define PIPELINE_ITEM_H

#ifdef __cplusplus
extern "C" {
#endif

#define ITEM_ID_MAX  128
#define ITEM_URL_MAX 2048

struct item {
	char image_id[ITEM_ID_MAX];
	char ad_id[ITEM_ID_MAX];
	char url[ITEM_URL_MAX];
	char created_at[40]; /* RFC 3339, as given */
	char source[192];    /* where it came from: "ads.csv:12" */

	int ok;           /* 0 once a stage failed it */
	int has_identity; /* image_id and ad_id are known */
	char failure_stage[16];
	char failure_reason[256];

	/* where the source can find the item again to acknowledge it (Kafka:
	 * partition, offset, assignment generation); has_pos = 0 otherwise */
	int has_pos;
	int part;
	long long offset;
	unsigned gen;

	int width, height; /* as stored */
	char sha256[65];   /* of the photo's bytes */
	float *tensor;     /* 3 x H x W, owned */
	float *embedding;  /* dim floats, owned */
};

/* Mark IT failed at STAGE with REASON (truncated to fit). */
void item_fail(struct item *it, const char *stage, const char *reason);

/* Release the buffers IT owns (not IT itself). */
void item_release(struct item *it);

#ifdef __cplusplus
}
#endif

#endif
