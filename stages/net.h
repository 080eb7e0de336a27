/* net.h - C++ only: the backbone network of model.cpp as train.cpp uses it.
 *
 * The inference model (model.h) and the trainer share one implementation of
 * the backbones; this header lets train.cpp build a model with separate
 * BatchNorm layers, reach its tensors by timm name and run its forward pass
 * with batch statistics. Never include it from C. */
#ifndef STAGES_NET_H
#define STAGES_NET_H

#include <torch/torch.h>

#include <string>
#include <vector>

#include "err.h"
#include "model.h"

namespace net
{

/* Width of the pooled backbone features. */
constexpr int FEATURES = 1280;

/* One tensor of the backbone by its timm name. PARAM: learned (gets a
 * gradient when training); otherwise a buffer (BatchNorm running stats). */
struct named_tensor {
	std::string name;
	torch::Tensor *t;
	bool param;
};

/* Build the backbone O names with BatchNorm kept apart from the convs (as
 * training needs; O->keep_bn is ignored). O->weights may be NULL: the
 * backbone then starts from a random initialisation drawn from libtorch's
 * generator (seed it first). A head or classifier in the weights is loaded
 * as model_open() does. Returns NULL with ERR filled; free with
 * model_close(). */
struct model *open(const struct model_opts *o, struct err *err);

/* Every backbone tensor in timm's order. The pointers stay valid for the
 * life of M; assigning through them replaces the tensor the forward uses. */
std::vector<named_tensor> tensors(struct model &m);

/* The embedding head loaded from the weights ("head.fc.*"), if any: returns
 * false and leaves W and B alone when the weights had none. */
bool head(const struct model &m, torch::Tensor *w, torch::Tensor *b);

/* N x 3 x H x W input on the model's device and in its layout. The result
 * copies IN. */
torch::Tensor input(const struct model &m, const float *in, int n, int h, int w);

/* Pooled backbone features, N x FEATURES. TRAINING: BatchNorm uses the batch
 * statistics and updates its running stats, and nothing is done in place
 * (autograd needs the intermediate values). */
torch::Tensor features(const struct model &m, const torch::Tensor &x, bool training);

torch::Device device(const struct model &m);

/* Per-channel sums of a conv's output, for bn_calibrate_end(). */
struct bn_sums {
	torch::Tensor sum, sumsq; /* double */
	double count = 0;
	void add(const torch::Tensor &x);
};

/* True when every BatchNorm of M is the identity plus a bias (running mean
 * 0, running variance 1, scale 1): weights whose BatchNorm was folded into
 * the convolutions, such as a TFLite export. Training such weights with
 * batch statistics would normalise activations the network never saw. */
bool bn_folded(struct model &m);

/* Recalibration: between begin and end, run features(m, x, false) over
 * representative inputs; end then sets each BatchNorm's running mean and
 * variance to the statistics measured at its input and rescales its weight
 * and bias so that the network computes exactly what it did before (in
 * evaluation mode), while batch statistics now match the running ones.
 * Returns the number of BatchNorms changed. */
void bn_calibrate_begin(struct model &m);
int bn_calibrate_end(struct model &m);

/* Run F, turning every C++ exception into ERR_FATAL prefixed with WHAT. */
template <typename F> int guarded(struct err *err, const char *what, F f)
{
	try {
		return f();
	} catch (const c10::Error &e) {
		return err_set(err, ERR_FATAL, "%s: libtorch: %s", what,
		               e.what_without_backtrace());
	} catch (const std::bad_alloc &) {
		return err_set(err, ERR_FATAL, "%s: out of memory", what);
	} catch (const std::exception &e) {
		return err_set(err, ERR_FATAL, "%s: %s", what, e.what());
	} catch (...) {
		return err_set(err, ERR_FATAL, "%s: unknown C++ exception", what);
	}
}

} // namespace net

#endif
