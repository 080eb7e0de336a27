/* Metric math on small cases computed by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "evaluate.h"

static void test_pairwise_scores_by_hand(void **state)
{
	/* ad 1: truth {a,b,c} {d}; predicted {a,b} {c,d}
	 *   pairs ab: t1 g1 tp; ac: t1 g0 fn; ad: t0 g0 tn; bc: t1 g0 fn;
	 *   bd: t0 g0 tn; cd: t0 g1 fp
	 * ad 2: truth {e,f}; predicted {e,f}: tp, exact
	 * ad 3: one photo, not grouped: exact, no pairs */
	struct eval_photo p[] = {
	    {"4", "1", "x", "g2"}, {"1", "1", "x", "g1"}, {"2", "1", "x", "g1"},
	    {"3", "1", "x", "g2"}, {"5", "2", "y", "h"},  {"6", "2", "y", "h"},
	    {"7", "3", "z", NULL},
	};
	struct eval_grouping g;

	p[0].truth = "w"; /* image 4 is its own item */
	assert_int_equal(eval_grouping(p, 7, &g, NULL), 0);
	assert_int_equal(g.tp, 2);
	assert_int_equal(g.fp, 1);
	assert_int_equal(g.fn, 2);
	assert_int_equal(g.tn, 2);
	assert_float_equal(g.precision, 2.0 / 3.0, 1e-12);
	assert_float_equal(g.recall, 0.5, 1e-12);
	assert_float_equal(g.f1, 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5), 1e-12);
	assert_int_equal(g.ads, 3);
	assert_int_equal(g.ads_exact, 2);
	assert_int_equal(g.photos_ungrouped, 1);
}

static void test_map_at_k_by_hand(void **state)
{
	/* four photos on a line of angles: labels A A B A.
	 * query 0 (0°): others 10°(A), 22°(B), 30°(A) -> ranks A B A
	 *   R=2, AP = (1/1 + 2/3)/2 = 0.8333
	 * query 1 (10°): 0°(A) 10° away, 22°(B) 12° away, 30°(A) 20° away
	 *   -> A B A: AP = (1 + 2/3)/2 = 0.8333
	 * query 2 (B): no other B: left out
	 * query 3 (30°): 22°(B), 10°(A), 0°(A): AP = (1/2 + 2/3)/2 = 0.5833 */
	const double deg[] = {0, 10, 22, 30};
	const int labels[] = {0, 0, 1, 0};
	float emb[8];
	double map;
	size_t q;
	int i;

	for (i = 0; i < 4; i++) {
		emb[2 * i] = (float)cos(deg[i] * M_PI / 180);
		emb[2 * i + 1] = (float)sin(deg[i] * M_PI / 180);
	}
	assert_int_equal(eval_map_at_k(emb, 4, 2, labels, 50, &map, &q, NULL), 0);
	assert_int_equal(q, 3);
	assert_float_equal(map, (5.0 / 6 + 5.0 / 6 + 7.0 / 12) / 3, 1e-9);

	/* k = 1: query 0 -> 1/min(2,1) * 1 = 1; query 1 -> 1; query 3 -> 0 */
	assert_int_equal(eval_map_at_k(emb, 4, 2, labels, 1, &map, &q, NULL), 0);
	assert_float_equal(map, 2.0 / 3, 1e-9);
}

static void test_perfect_retrieval_is_one(void **state)
{
	const float emb[] = {1, 0, 1, 0, 0, 1, 0, 1};
	const int labels[] = {3, 3, 4, 4};
	double map;

	assert_int_equal(eval_map_at_k(emb, 4, 2, labels, 50, &map, NULL, NULL), 0);
	assert_float_equal(map, 1.0, 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pairwise_scores_by_hand),
	    cmocka_unit_test(test_map_at_k_by_hand),
	    cmocka_unit_test(test_perfect_retrieval_is_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
