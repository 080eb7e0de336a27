/* Grouping: order independence, thresholds, linkages, singletons, ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "group.h"

/* Unit vectors in the plane at the given angles (degrees). */
static void unit2(const double *deg, size_t n, float *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = (float)cos(deg[i] * M_PI / 180);
		out[2 * i + 1] = (float)sin(deg[i] * M_PI / 180);
	}
}

/* A~B and B~C but A far from C: cos(35°)=0.82 for A,B, cos(45°)=0.71 for B,C,
 * cos(80°)=0.17 between A and C. */
static const double chain_deg[] = {0, 35, 80};
static const char *const chain_ids[] = {"10", "11", "12"};

static void group_chain_all_orders(double thr, enum linkage lk, int expect_groups,
                                   const char *expect_partition)
{
	static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
	                                {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
	int p;

	for (p = 0; p < 6; p++) {
		double deg[3];
		const char *ids[3];
		float emb[6];
		int labels[3];
		char part[4] = "";
		int i, g;

		for (i = 0; i < 3; i++) {
			deg[i] = chain_deg[perms[p][i]];
			ids[i] = chain_ids[perms[p][i]];
		}
		unit2(deg, 3, emb);
		g = group_cluster(emb, 3, 2, ids, thr, lk, labels, NULL);
		assert_int_equal(g, expect_groups);
		/* describe the partition in id order: the group leader's id digit */
		for (i = 0; i < 3; i++) {
			int k;

			for (k = 0; k < 3; k++)
				if (!strcmp(ids[k], chain_ids[i]))
					part[i] = ids[labels[k]][1];
		}
		assert_string_equal(part, expect_partition);
	}
}

static void test_average_linkage_does_not_chain(void **state)
{
	/* A+B merge first at 0.82; the average of
	 * C to {A,B} is (0.17+0.71)/2 = 0.44 < 0.6: C stays alone */
	group_chain_all_orders(0.6, LINKAGE_AVERAGE, 2, "002");
}

static void test_single_linkage_chains(void **state)
{
	group_chain_all_orders(0.6, LINKAGE_SINGLE, 1, "000");
}

static void test_complete_linkage_strictest(void **state)
{
	group_chain_all_orders(0.4, LINKAGE_COMPLETE, 2, "002");
	group_chain_all_orders(0.4, LINKAGE_AVERAGE, 1, "000");
}

static void test_threshold_extremes(void **state)
{
	group_chain_all_orders(1.01, LINKAGE_AVERAGE, 3, "012");
	group_chain_all_orders(-1.0, LINKAGE_AVERAGE, 1, "000");
}

static void test_singleton_and_empty(void **state)
{
	const char *ids[] = {"7"};
	float emb[2] = {1, 0};
	int labels[1] = {-1};

	assert_int_equal(group_cluster(emb, 1, 2, ids, 0.5, LINKAGE_AVERAGE, labels, NULL), 1);
	assert_int_equal(labels[0], 0);
	assert_int_equal(group_cluster(NULL, 0, 2, NULL, 0.5, LINKAGE_AVERAGE, NULL, NULL), 0);
}

static void test_two_bikes_and_a_stray(void **state)
{
	/* bike one at 0..10 degrees, bike two at 90..95, a stray at 200 */
	const double deg[] = {95, 0, 200, 10, 90, 5};
	const char *ids[] = {"6", "2", "9", "3", "5", "4"};
	float emb[12];
	int labels[6];

	unit2(deg, 6, emb);
	assert_int_equal(group_cluster(emb, 6, 2, ids, 0.8, LINKAGE_AVERAGE, labels, NULL), 3);
	/* the leader is the smallest id of each group */
	assert_string_equal(ids[labels[1]], "2");
	assert_string_equal(ids[labels[3]], "2");
	assert_string_equal(ids[labels[5]], "2");
	assert_string_equal(ids[labels[0]], "5");
	assert_string_equal(ids[labels[4]], "5");
	assert_string_equal(ids[labels[2]], "9");
}

static void test_id_order_numeric_then_text(void **state)
{
	char gid[64];

	assert_true(group_id_cmp("9", "10") < 0);
	assert_true(group_id_cmp("010", "9") > 0);
	assert_true(group_id_cmp("abc", "abd") < 0);
	assert_int_equal(group_id_cmp("42", "42"), 0);
	group_id_format("9000001", "30", gid, sizeof(gid));
	assert_string_equal(gid, "9000001/30");
}

static void test_too_many_photos_is_input_error(void **state)
{
	struct err err = {0};

	assert_int_equal(group_cluster((const float *)"", GROUP_MAX_PHOTOS + 1, 2, NULL, 0.5,
	                               LINKAGE_AVERAGE, NULL, &err),
	                 -1);
	assert_int_equal(err.kind, ERR_INPUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_average_linkage_does_not_chain),
	    cmocka_unit_test(test_single_linkage_chains),
	    cmocka_unit_test(test_complete_linkage_strictest),
	    cmocka_unit_test(test_threshold_extremes),
	    cmocka_unit_test(test_singleton_and_empty),
	    cmocka_unit_test(test_two_bikes_and_a_stray),
	    cmocka_unit_test(test_id_order_numeric_then_text),
	    cmocka_unit_test(test_too_many_photos_is_input_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
