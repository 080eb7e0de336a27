/* train.cpp - ArcFace metric learning of the embedding network in libtorch:
 * the backbone of model.cpp (through net.h), a linear head, an ArcFace layer,
 * AdamW and the learning-rate schedule; checkpoints and timm-named weights. */
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "net.h"
#include "safetensors.h"
#include "train.h"

namespace
{

/* Cosines are kept this far inside [-1, 1]: d sqrt(1 - c^2) / dc is finite
 * there, and acos-based terms stay defined. */
constexpr double COS_EPS = 1e-6;

/* Bounds on one training call; larger requests are caller bugs. */
constexpr int MAX_BATCH = 4096;
constexpr int MAX_SIDE = 4096;
constexpr int MAX_CLASSES = 10000000;

struct model_free {
	void operator()(struct model *m) const
	{
		model_close(m);
	}
};

/* Logits of the ArcFace layer: scale * cos(theta + margin) for the target
 * class, scale * cos(theta) for the others. */
torch::Tensor arcface_logits(const torch::Tensor &emb, const torch::Tensor &w,
                             const torch::Tensor &labels, double margin, double scale)
{
	namespace F = torch::nn::functional;
	torch::Tensor cosv = torch::linear(F::normalize(emb, F::NormalizeFuncOptions().dim(1)),
	                                   F::normalize(w, F::NormalizeFuncOptions().dim(1)));
	torch::Tensor sine, phi, target;

	cosv = cosv.clamp(-1 + COS_EPS, 1 - COS_EPS);
	sine = (1 - cosv * cosv).sqrt();
	phi = cosv * std::cos(margin) - sine * std::sin(margin);
	/* past theta = pi - margin, cos(theta + margin) would rise again: use a
	 * penalty that keeps the target logit falling with theta */
	phi = torch::where(cosv > std::cos(M_PI - margin), phi, cosv - margin * std::sin(margin));
	target = torch::zeros_like(cosv).scatter_(1, labels.view({-1, 1}), 1.0);
	return scale * (target * phi + (1 - target) * cosv);
}

torch::Tensor arcface_loss(const torch::Tensor &emb, const torch::Tensor &w,
                           const torch::Tensor &labels, double margin, double scale)
{
	return torch::nn::functional::cross_entropy(arcface_logits(emb, w, labels, margin, scale),
	                                            labels);
}

/* Write T as float32 C-order bytes: T on the CPU, default layout. */
torch::Tensor host_f32(const torch::Tensor &t)
{
	return t.detach().to(torch::kCPU, torch::kFloat).contiguous();
}

int check_batch(int n, int h, int w, struct err *err)
{
	if (n < 1 || n > MAX_BATCH || h < 1 || h > MAX_SIDE || w < 1 || w > MAX_SIDE)
		return err_set(err, ERR_FATAL,
		               "train: batch %dx3x%dx%d outside 1..%d images of 1..%d pixels", n, h,
		               w, MAX_BATCH, MAX_SIDE);
	return 0;
}

} // namespace

struct trainer {
	struct train_opts o;
	std::string backbone, device_name, init_weights;
	std::unique_ptr<struct model, model_free> net;
	torch::Device device{torch::kCPU};
	torch::Tensor fc_w, fc_b, arc_w;
	std::vector<net::named_tensor> tensors;
	std::vector<torch::Tensor> params; /* backbone, then head and ArcFace */
	std::unique_ptr<torch::optim::AdamW> opt;
	long steps = 0;
	int pending = 0; /* micro-batches whose gradients wait for a step */
	bool autocast = false;
	bool calibrating = false;
	torch::Tensor imprint_sum; /* per class: sum of normalised embeddings */
};

namespace
{

void set_lr(trainer &t)
{
	double f = schedule_factor(t.o.schedule, t.steps, t.o.total_steps, t.o.warmup_steps);
	auto &groups = t.opt->param_groups();

	static_cast<torch::optim::AdamWOptions &>(groups[0].options()).lr(t.o.lr_backbone * f);
	static_cast<torch::optim::AdamWOptions &>(groups[1].options()).lr(t.o.lr_head * f);
}

void optimizer_step(trainer &t)
{
	set_lr(t);
	if (t.o.gradient_clip > 0)
		torch::nn::utils::clip_grad_norm_(t.params, t.o.gradient_clip);
	t.opt->step();
	t.opt->zero_grad();
	t.steps++;
	t.pending = 0;
}

/* A linear layer's default start, as torch.nn.Linear draws it. */
void linear_init(torch::Tensor &w, torch::Tensor &b, int64_t out, int64_t in)
{
	double bound = 1.0 / std::sqrt((double)in);

	w = torch::empty({out, in}).uniform_(-bound, bound);
	b = torch::empty({out}).uniform_(-bound, bound);
}

int setup(trainer &t, struct err *err)
{
	const struct train_opts &o = t.o;
	struct model_opts mo = {};
	torch::NoGradGuard no_grad;
	torch::Tensor hw, hb;
	std::vector<torch::Tensor> backbone, head;
	double bound;

	if (o.classes < 2 || o.classes > MAX_CLASSES)
		return err_set(err, ERR_FATAL, "train: %d classes (need 2..%d)", o.classes,
		               MAX_CLASSES);
	if (o.embedding_size < 1 || o.grad_accumulation < 1 || o.arcface_scale <= 0 ||
	    o.arcface_margin < 0 || o.arcface_margin >= M_PI / 2 || o.dropout < 0 || o.dropout >= 1)
		return err_set(err, ERR_FATAL,
		               "train: bad options (embedding %d, accumulation %d, margin %g, "
		               "scale %g, dropout %g)",
		               o.embedding_size, o.grad_accumulation, o.arcface_margin,
		               o.arcface_scale, o.dropout);
	torch::manual_seed(o.seed);
	mo.backbone = o.backbone;
	mo.weights = o.init_weights;
	mo.pool = o.pool;
	mo.gem_p = o.gem_p;
	mo.embedding_size = 0; /* the head is checked here, not by the loader */
	mo.device = o.device;
	mo.threads = o.threads;
	mo.channels_last = o.channels_last;
	t.net.reset(net::open(&mo, err));
	if (!t.net)
		return -1;
	t.device = net::device(*t.net);
	/* LIMIT: bf16 autocast on CUDA is written but untested here (the build
	 * machines' libtorch is CPU-only); on the CPU it is not used. */
	t.autocast = o.mixed_precision && t.device.is_cuda();

	if (net::head(*t.net, &hw, &hb) && hw.size(0) == o.embedding_size) {
		t.fc_w = hw.clone();
		t.fc_b = hb.clone();
	} else {
		linear_init(t.fc_w, t.fc_b, o.embedding_size, net::FEATURES);
	}
	/* Xavier-uniform, as the usual ArcFace layer starts */
	bound = std::sqrt(6.0 / (double)(o.classes + o.embedding_size));
	t.arc_w = torch::empty({o.classes, o.embedding_size}).uniform_(-bound, bound);
	t.fc_w = t.fc_w.to(t.device).requires_grad_(true);
	t.fc_b = t.fc_b.to(t.device).requires_grad_(true);
	t.arc_w = t.arc_w.to(t.device).requires_grad_(true);

	t.tensors = net::tensors(*t.net);
	for (net::named_tensor &nt : t.tensors) {
		if (!nt.param)
			continue;
		nt.t->requires_grad_(true);
		backbone.push_back(*nt.t);
	}
	head = {t.fc_w, t.fc_b, t.arc_w};
	t.params = backbone;
	t.params.insert(t.params.end(), head.begin(), head.end());

	std::vector<torch::optim::OptimizerParamGroup> groups;
	groups.emplace_back(
	    backbone, std::make_unique<torch::optim::AdamWOptions>(
	                  torch::optim::AdamWOptions(o.lr_backbone).weight_decay(o.weight_decay)));
	groups.emplace_back(
	    head, std::make_unique<torch::optim::AdamWOptions>(
	              torch::optim::AdamWOptions(o.lr_head).weight_decay(o.weight_decay)));
	t.opt = std::make_unique<torch::optim::AdamW>(
	    std::move(groups), torch::optim::AdamWOptions(o.lr_head).weight_decay(o.weight_decay));
	return 0;
}

torch::Tensor embed_forward(trainer &t, const torch::Tensor &x, bool training)
{
	torch::Tensor f = net::features(*t.net, x, training);

	if (training && t.o.dropout > 0)
		f = torch::dropout(f, t.o.dropout, true);
	return torch::linear(f, t.fc_w, t.fc_b);
}

/* Temporary file beside PATH, renamed over it once complete. */
std::string temp_name(const char *path)
{
	return std::string(path) + ".tmp." + std::to_string((long)getpid());
}

int load_into(torch::serialize::InputArchive &ar, const std::string &key, torch::Tensor &dst,
              const char *path, struct err *err)
{
	torch::Tensor v;

	if (!ar.try_read(key, v))
		return err_set(err, ERR_FATAL, "%s: checkpoint has no %s", path, key.c_str());
	if (v.sizes() != dst.sizes())
		return err_set(err, ERR_FATAL, "%s: checkpoint's %s has another shape", path,
		               key.c_str());
	dst.copy_(v);
	return 0;
}

} // namespace

extern "C" {

struct trainer *train_open(const struct train_opts *o, struct err *err)
{
	std::unique_ptr<trainer> t;
	int rc;

	if (!o || !o->backbone) {
		err_set(err, ERR_FATAL, "train: a backbone is required");
		return nullptr;
	}
	rc = net::guarded(err, "train open", [&]() {
		t.reset(new trainer());
		t->o = *o;
		t->backbone = o->backbone;
		t->device_name = o->device ? o->device : "cpu";
		t->init_weights = o->init_weights ? o->init_weights : "";
		t->o.backbone = t->backbone.c_str();
		t->o.device = t->device_name.c_str();
		t->o.init_weights = o->init_weights ? t->init_weights.c_str() : nullptr;
		return setup(*t, err);
	});
	return rc < 0 ? nullptr : t.release();
}

int train_bn_folded(struct trainer *t)
{
	struct err e = {};
	int folded = 0;

	net::guarded(&e, "train", [&]() {
		folded = net::bn_folded(*t->net) ? 1 : 0;
		return 0;
	});
	return folded;
}

int train_bn_calibrate(struct trainer *t, const float *x, int n, int h, int w, struct err *err)
{
	if (!t || !x)
		return err_set(err, ERR_FATAL, "train: NULL argument");
	if (check_batch(n, h, w, err) < 0)
		return -1;
	return net::guarded(err, "train calibrate", [&]() {
		torch::NoGradGuard no_grad;

		if (!t->calibrating) {
			net::bn_calibrate_begin(*t->net);
			t->calibrating = true;
		}
		net::features(*t->net, net::input(*t->net, x, n, h, w), false);
		return 0;
	});
}

int train_bn_calibrate_end(struct trainer *t, struct err *err)
{
	int n = 0;

	if (net::guarded(err, "train calibrate", [&]() {
		    n = net::bn_calibrate_end(*t->net);
		    t->calibrating = false;
		    return 0;
	    }) < 0)
		return -1;
	return n;
}

namespace
{

/* A batch of N images with their classes, as train_imprint() and train_batch() take it. */
int check_labelled_batch(const struct trainer *t, const float *x, const int *labels, int n, int h,
                         int w, struct err *err)
{
	if (!t || !x || !labels)
		return err_set(err, ERR_FATAL, "train: NULL argument");
	if (check_batch(n, h, w, err) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (labels[i] < 0 || labels[i] >= t->o.classes)
			return err_set(err, ERR_FATAL, "train: label %d outside 0..%d", labels[i],
			               t->o.classes - 1);
	return 0;
}

} // namespace

int train_imprint(struct trainer *t, const float *x, const int *labels, int n, int h, int w,
                  struct err *err)
{
	if (check_labelled_batch(t, x, labels, n, h, w, err) < 0)
		return -1;
	return net::guarded(err, "train imprint", [&]() {
		torch::NoGradGuard no_grad;
		torch::Tensor e = embed_forward(*t, net::input(*t->net, x, n, h, w), false);
		torch::Tensor y =
		    torch::from_blob(const_cast<int *>(labels), {n}, torch::kInt).to(torch::kLong);

		e = e / e.norm(2, 1, true).clamp_min(1e-12);
		if (!t->imprint_sum.defined())
			t->imprint_sum = torch::zeros_like(t->arc_w);
		t->imprint_sum.index_add_(0, y.to(t->device), e.to(t->imprint_sum.dtype()));
		return 0;
	});
}

int train_imprint_end(struct trainer *t, struct err *err)
{
	int n = 0;

	if (net::guarded(err, "train imprint", [&]() {
		    torch::NoGradGuard no_grad;
		    torch::Tensor norm, seen;

		    if (!t->imprint_sum.defined())
			    return 0;
		    norm = t->imprint_sum.norm(2, 1, true);
		    seen = norm.squeeze(1) > 0;
		    n = (int)seen.sum().item<int64_t>();
		    t->arc_w.copy_(
		        torch::where(norm > 0, t->imprint_sum / norm.clamp_min(1e-12), t->arc_w));
		    t->imprint_sum = torch::Tensor();
		    return 0;
	    }) < 0)
		return -1;
	return n;
}

int train_batch(struct trainer *t, const float *x, const int *labels, int n, int h, int w,
                double *loss, struct err *err)
{
	if (check_labelled_batch(t, x, labels, n, h, w, err) < 0)
		return -1;
	return net::guarded(err, "train batch", [&]() {
		torch::Tensor in = net::input(*t->net, x, n, h, w);
		torch::Tensor y =
		    torch::from_blob(const_cast<int *>(labels), {n}, torch::kInt).to(torch::kLong);
		torch::Tensor emb, l;
		double v;

		y = y.to(t->device);
		if (t->autocast) {
			at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
			at::autocast::set_enabled(true);
		}
		emb = embed_forward(*t, in, true);
		if (t->autocast) {
			at::autocast::set_enabled(false);
			at::autocast::clear_cache();
			emb = emb.to(torch::kFloat);
		}
		l = arcface_loss(emb, t->arc_w, y, t->o.arcface_margin, t->o.arcface_scale);
		v = l.item<double>();
		if (!std::isfinite(v)) {
			t->opt->zero_grad();
			t->pending = 0;
			return err_set(err, ERR_FATAL,
			               "train: loss is %g at step %ld (lower the learning rate)", v,
			               t->steps);
		}
		(l / t->o.grad_accumulation).backward();
		if (++t->pending == t->o.grad_accumulation)
			optimizer_step(*t);
		if (loss)
			*loss = v;
		return 0;
	});
}

int train_flush(struct trainer *t, struct err *err)
{
	return net::guarded(err, "train step", [&]() {
		if (t->pending > 0)
			optimizer_step(*t);
		return 0;
	});
}

long train_steps(const struct trainer *t)
{
	return t->steps;
}

void train_current_lr(const struct trainer *t, double *lr_backbone, double *lr_head)
{
	double f = schedule_factor(t->o.schedule, t->steps, t->o.total_steps, t->o.warmup_steps);

	if (lr_backbone)
		*lr_backbone = t->o.lr_backbone * f;
	if (lr_head)
		*lr_head = t->o.lr_head * f;
}

void train_reseed(struct trainer *t, uint64_t seed)
{
	(void)t;
	torch::manual_seed(seed);
}

int train_dim(const struct trainer *t)
{
	return t->o.embedding_size;
}

int train_embed(struct trainer *t, const float *x, int n, int h, int w, float *out, struct err *err)
{
	if (!t || !x || !out)
		return err_set(err, ERR_FATAL, "train: NULL argument");
	if (check_batch(n, h, w, err) < 0)
		return -1;
	return net::guarded(err, "train embed", [&]() {
		torch::NoGradGuard no_grad;
		torch::Tensor e = embed_forward(*t, net::input(*t->net, x, n, h, w), false);

		e = host_f32(e / e.norm(2, 1, true).clamp_min(1e-12));
		std::memcpy(out, e.data_ptr<float>(), (size_t)e.numel() * sizeof(float));
		return 0;
	});
}

int train_save_weights(struct trainer *t, const char *path, const char *const *meta, size_t nmeta,
                       struct err *err)
{
	return net::guarded(err, "train save", [&]() {
		std::vector<torch::Tensor> keep;
		std::vector<std::string> names;
		std::vector<struct st_write_tensor> out;

		for (const net::named_tensor &nt : t->tensors) {
			names.push_back(nt.name);
			keep.push_back(host_f32(*nt.t));
		}
		names.push_back("head.fc.weight");
		keep.push_back(host_f32(t->fc_w));
		names.push_back("head.fc.bias");
		keep.push_back(host_f32(t->fc_b));
		for (size_t i = 0; i < keep.size(); i++) {
			struct st_write_tensor w = {};

			w.name = names[i].c_str();
			w.ndim = (int)keep[i].dim();
			for (int d = 0; d < w.ndim; d++)
				w.shape[d] = keep[i].size(d);
			w.data = keep[i].data_ptr<float>();
			out.push_back(w);
		}
		return safetensors_write(path, out.data(), out.size(), meta, nmeta, err);
	});
}

int train_checkpoint_save(struct trainer *t, const char *path, struct err *err)
{
	std::string tmp = temp_name(path);
	int rc = net::guarded(err, "train checkpoint", [&]() {
		torch::serialize::OutputArchive ar, opt;

		for (const net::named_tensor &nt : t->tensors)
			ar.write("net." + nt.name, host_f32(*nt.t), !nt.param);
		ar.write("head.fc.weight", host_f32(t->fc_w));
		ar.write("head.fc.bias", host_f32(t->fc_b));
		ar.write("arcface.weight", host_f32(t->arc_w));
		ar.write("steps", torch::tensor((int64_t)t->steps), true);
		t->opt->save(opt);
		ar.write("optimizer", opt);
		ar.save_to(tmp);
		if (std::rename(tmp.c_str(), path) != 0)
			return err_set(err, ERR_FATAL,
			               "%s: cannot rename checkpoint into place: %s", path,
			               std::strerror(errno));
		return 0;
	});
	if (rc < 0)
		unlink(tmp.c_str());
	return rc;
}

int train_checkpoint_load(struct trainer *t, const char *path, struct err *err)
{
	int rc = net::guarded(err, "train resume", [&]() {
		torch::serialize::InputArchive ar, opt;
		torch::NoGradGuard no_grad;
		torch::Tensor steps;

		ar.load_from(path, t->device);
		for (net::named_tensor &nt : t->tensors)
			if (load_into(ar, "net." + nt.name, *nt.t, path, err) < 0)
				return -1;
		if (load_into(ar, "head.fc.weight", t->fc_w, path, err) < 0 ||
		    load_into(ar, "head.fc.bias", t->fc_b, path, err) < 0 ||
		    load_into(ar, "arcface.weight", t->arc_w, path, err) < 0)
			return -1;
		if (!ar.try_read("steps", steps) || !ar.try_read("optimizer", opt))
			return err_set(err, ERR_FATAL, "%s: checkpoint lacks steps or optimizer",
			               path);
		t->opt->load(opt);
		t->steps = (long)steps.item<int64_t>();
		t->pending = 0;
		return 0;
	});
	return rc < 0 ? err_prefix(err, "resume") : 0;
}

void train_close(struct trainer *t)
{
	delete t;
}

int train_arcface_loss(const float *emb, const float *w, const int *labels, int n, int dim,
                       int classes, double margin, double scale, double *loss, float *grad_emb,
                       float *grad_w, struct err *err)
{
	if (!emb || !w || !labels || !loss || n < 1 || dim < 1 || classes < 1)
		return err_set(err, ERR_FATAL, "arcface: bad arguments");
	return net::guarded(err, "arcface", [&]() {
		torch::Tensor e =
		    torch::from_blob(const_cast<float *>(emb), {n, dim}, torch::kFloat).clone();
		torch::Tensor cw =
		    torch::from_blob(const_cast<float *>(w), {classes, dim}, torch::kFloat).clone();
		torch::Tensor y =
		    torch::from_blob(const_cast<int *>(labels), {n}, torch::kInt).to(torch::kLong);
		torch::Tensor l;

		e.requires_grad_(true);
		cw.requires_grad_(true);
		l = arcface_loss(e, cw, y, margin, scale);
		l.backward();
		*loss = l.item<double>();
		if (grad_emb)
			std::memcpy(grad_emb, e.grad().contiguous().data_ptr<float>(),
			            (size_t)n * dim * sizeof(float));
		if (grad_w)
			std::memcpy(grad_w, cw.grad().contiguous().data_ptr<float>(),
			            (size_t)classes * dim * sizeof(float));
		return 0;
	});
}

} // extern "C"
