/* model.cpp - the embedding network: timm's tf_efficientnet_b0_ns and
 * mobilenetv2_100 rebuilt as a functional forward over tensors named as in
 * timm's state dict, loaded from .safetensors; the only libtorch code. */
#include <torch/torch.h>

#include <ATen/autocast_mode.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

/* Set by the Makefile when building against a libtorch with CUDA (TORCH_DIR=...): the
 * stream and event types need the CUDA toolkit's headers. */
#ifdef MODEL_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "log.h"
#include "model.h"
#include "net.h"
#include "safetensors.h"

namespace
{

/* Both backbones share the EfficientNet family's layout: a 3x3 stride-2 stem
 * to 32 channels, seven stages of depthwise-separable (stage 0) and
 * inverted-residual blocks, and a 1x1 head conv to 1280 channels. */
constexpr int64_t STEM_CH = 32;
constexpr int64_t FEAT_CH = 1280;
constexpr int NSTAGES = 7;

/* Bounds on one model call; larger requests are caller bugs, not photos. */
constexpr int MAX_BATCH = 256;
constexpr int MAX_SIDE = 4096;

/* Images per CPU forward pass when the caller leaves it to us: about this many input pixels.
 * Measured with both backbones on 2 cores (photos/s, channels-last): at 224 px batch 1 /
 * 8 / 32 gave 62 / 76 / 61 (MobileNetV2) and 44 / 37 / 25 (EfficientNet-B0); at 512 px
 * 14 / 12 / 3.2 and 10.1 / 10.2 / 3.1. Activations past a few hundred thousand pixels per
 * pass stop fitting the caches, so bigger batches are split. */
constexpr int64_t CPU_PIXELS_PER_FORWARD = 400000;

/* Names shown in a key-mismatch error before "and N more". */
constexpr size_t MAX_LISTED = 4;

enum act_kind { ACT_SILU, ACT_RELU6 };

struct stage_def {
	int repeats, k, stride, expand;
	int64_t out;
};

struct arch_def {
	const char *names[3]; /* timm names that mean this architecture */
	double bn_eps;
	act_kind act;
	bool se; /* squeeze-excite in every block, width in_ch / 4 */
	stage_def stages[NSTAGES];
};

/* The tables of EFFNET_FACTS.md and MOBILENETV2_FACTS.md. Both use TF "SAME"
 * padding on stride-2 convs (the MobileNetV2 weights come from TFLite). */
const arch_def ARCHS[] = {
    {{"tf_efficientnet_b0_ns", "tf_efficientnet_b0.ns_jft_in1k", "tf_efficientnet_b0"},
     1e-3,
     ACT_SILU,
     true,
     {{1, 3, 1, 1, 16},
      {2, 3, 2, 6, 24},
      {2, 5, 2, 6, 40},
      {3, 3, 2, 6, 80},
      {3, 5, 1, 6, 112},
      {4, 5, 2, 6, 192},
      {1, 3, 1, 6, 320}}},
    {{"mobilenetv2_100", nullptr, nullptr},
     1e-5,
     ACT_RELU6,
     false,
     {{1, 3, 1, 1, 16},
      {2, 3, 2, 6, 24},
      {3, 3, 2, 6, 32},
      {4, 3, 2, 6, 64},
      {3, 3, 1, 6, 96},
      {3, 3, 2, 6, 160},
      {1, 3, 1, 6, 320}}},
};

/* A conv followed by a BatchNorm and, when ACT is set, the activation. */
struct conv_bn {
	std::string conv, bn; /* key prefixes: "blocks.1.0.conv_dw", "blocks.1.0.bn2" */
	int64_t in, out, k, stride, groups;
	bool act;
	torch::Tensor w, bn_w, bn_b, bn_mean, bn_var; /* as loaded */
	torch::Tensor fw, fb; /* the BN folded into the conv, for inference */
};

struct se_unit {
	std::string prefix;
	int64_t ch, rd;
	torch::Tensor rw, rb, ew, eb;
};

/* DS block: pre = [conv_dw], proj = conv_pw. IR block: pre = [conv_pw,
 * conv_dw], proj = conv_pwl. SE, when present, sits between them. */
struct block {
	std::vector<conv_bn> pre;
	conv_bn proj;
	bool has_se, skip;
	se_unit se;
};

/* One parameter the weights file must (or may) provide. */
struct slot {
	std::string key;
	std::vector<int64_t> shape;
	torch::Tensor *dst;
};

} // namespace

struct model {
	const arch_def *arch = nullptr;
	torch::Device device{torch::kCPU};
	bool channels_last = false, folded = false;
	enum model_pool pool = MODEL_POOL_AVG;
	double gem_p = 3.0;
	conv_bn stem, head;
	std::vector<block> blocks;
	torch::Tensor fc_w, fc_b;   /* embedding head, optional */
	torch::Tensor cls_w, cls_b; /* timm classifier, optional */
	int dim = (int)FEAT_CH, ncls = 0;
	std::vector<slot> slots; /* every backbone parameter by timm name */
	bool autocast = false;   /* FP16: CUDA autocast around the forward */
	int max_forward = 0;     /* images per CPU forward pass; 0: from the image size */
	std::string device_name;
	struct model_stats stats = {};

	/* CUDA only: two pinned host buffers, filled in turn, so that one chunk's upload can
	 * run while the chunk before it computes. */
	torch::Tensor pinned[2];
#ifdef MODEL_WITH_CUDA
	c10::optional<c10::cuda::CUDAStream> copy_stream;
	at::cuda::CUDAEvent uploaded[2];
#endif
	/* while set, the unfolded forward sums each conv's output per channel */
	std::unique_ptr<std::unordered_map<const conv_bn *, net::bn_sums>> calib;
};

namespace
{

conv_bn make_conv(const std::string &conv, const std::string &bn, int64_t in, int64_t out,
                  int64_t k, int64_t stride, bool depthwise, bool act)
{
	conv_bn c;

	c.conv = conv;
	c.bn = bn;
	c.in = in;
	c.out = out;
	c.k = k;
	c.stride = stride;
	c.groups = depthwise ? in : 1;
	c.act = act;
	return c;
}

void build_layers(model &m)
{
	const arch_def &a = *m.arch;
	int64_t in = STEM_CH;

	m.stem = make_conv("conv_stem", "bn1", 3, STEM_CH, 3, 2, false, true);
	for (int s = 0; s < NSTAGES; s++) {
		const stage_def &sd = a.stages[s];

		for (int r = 0; r < sd.repeats; r++) {
			std::string p =
			    "blocks." + std::to_string(s) + "." + std::to_string(r) + ".";
			int64_t stride = r == 0 ? sd.stride : 1;
			int64_t mid = in * sd.expand;
			block b;

			if (sd.expand == 1) {
				b.pre.push_back(make_conv(p + "conv_dw", p + "bn1", in, in, sd.k,
				                          stride, true, true));
				b.proj = make_conv(p + "conv_pw", p + "bn2", in, sd.out, 1, 1,
				                   false, false);
			} else {
				b.pre.push_back(make_conv(p + "conv_pw", p + "bn1", in, mid, 1, 1,
				                          false, true));
				b.pre.push_back(make_conv(p + "conv_dw", p + "bn2", mid, mid, sd.k,
				                          stride, true, true));
				b.proj = make_conv(p + "conv_pwl", p + "bn3", mid, sd.out, 1, 1,
				                   false, false);
			}
			b.has_se = a.se;
			b.se.prefix = p + "se.";
			b.se.ch = mid;
			b.se.rd = in / 4;
			b.skip = stride == 1 && in == sd.out;
			m.blocks.push_back(std::move(b));
			in = sd.out;
		}
	}
	m.head = make_conv("conv_head", "bn2", in, FEAT_CH, 1, 1, false, true);
}

void add_conv_slots(std::vector<slot> &s, conv_bn &c)
{
	s.push_back({c.conv + ".weight", {c.out, c.in / c.groups, c.k, c.k}, &c.w});
	s.push_back({c.bn + ".weight", {c.out}, &c.bn_w});
	s.push_back({c.bn + ".bias", {c.out}, &c.bn_b});
	s.push_back({c.bn + ".running_mean", {c.out}, &c.bn_mean});
	s.push_back({c.bn + ".running_var", {c.out}, &c.bn_var});
}

/* The backbone's parameters in timm's order. The pointers stay valid because
 * the layer vectors are not resized after build_layers(). */
void collect_slots(model &m)
{
	std::vector<slot> &s = m.slots;

	add_conv_slots(s, m.stem);
	for (block &b : m.blocks) {
		for (conv_bn &c : b.pre)
			add_conv_slots(s, c);
		if (b.has_se) {
			se_unit &e = b.se;

			s.push_back({e.prefix + "conv_reduce.weight", {e.rd, e.ch, 1, 1}, &e.rw});
			s.push_back({e.prefix + "conv_reduce.bias", {e.rd}, &e.rb});
			s.push_back({e.prefix + "conv_expand.weight", {e.ch, e.rd, 1, 1}, &e.ew});
			s.push_back({e.prefix + "conv_expand.bias", {e.ch}, &e.eb});
		}
		add_conv_slots(s, b.proj);
	}
	add_conv_slots(s, m.head);
}

const arch_def *arch_find(const char *name)
{
	for (const arch_def &a : ARCHS)
		for (const char *n : a.names)
			if (n && !strcmp(n, name))
				return &a;
	return nullptr;
}

std::string shape_str(const int64_t *shape, size_t ndim)
{
	std::string s = "[";

	for (size_t i = 0; i < ndim; i++)
		s += (i ? "," : "") + std::to_string(shape[i]);
	return s + "]";
}

/* "N what (a, b, c, d and K more)" for a non-empty list. */
std::string list_str(const std::vector<std::string> &v, const char *what)
{
	std::string s = std::to_string(v.size()) + " " + what + " (";

	for (size_t i = 0; i < v.size() && i < MAX_LISTED; i++)
		s += (i ? ", " : "") + v[i];
	if (v.size() > MAX_LISTED)
		s += " and " + std::to_string(v.size() - MAX_LISTED) + " more";
	return s + ")";
}

/* Copy T, converted to float32, into a new tensor of its shape. */
int tensor_load(const struct st_tensor *t, torch::Tensor *dst, struct err *err)
{
	torch::Tensor x =
	    torch::empty(std::vector<int64_t>(t->shape, t->shape + t->ndim), torch::kFloat);

	if (safetensors_to_f32(t, x.data_ptr<float>(), (size_t)t->numel, err) < 0)
		return -1;
	*dst = x;
	return 0;
}

/* The mismatch lists that a weights file fills in as it is checked. */
struct key_report {
	std::unordered_set<std::string> used;
	std::vector<std::string> missing, unexpected, misfit;
};

int load_slot(const struct safetensors *st, slot &s, key_report &r, struct err *err)
{
	const struct st_tensor *t = safetensors_find(st, s.key.c_str());

	if (!t) {
		r.missing.push_back(s.key);
		return 0;
	}
	r.used.insert(s.key);
	if ((size_t)t->ndim != s.shape.size() ||
	    !std::equal(s.shape.begin(), s.shape.end(), t->shape)) {
		r.misfit.push_back(s.key + " " + shape_str(t->shape, (size_t)t->ndim) + " not " +
		                   shape_str(s.shape.data(), s.shape.size()));
		return 0;
	}
	return tensor_load(t, s.dst, err);
}

/* An optional linear layer PREFIX.weight [rows, FEAT_CH] with an optional
 * PREFIX.bias [rows]. *ROWS is 0 when the weight is absent. */
int load_linear(const struct safetensors *st, const std::string &prefix, torch::Tensor *w,
                torch::Tensor *b, int *rows, key_report &r, struct err *err)
{
	const struct st_tensor *tw = safetensors_find(st, (prefix + ".weight").c_str());
	const struct st_tensor *tb = safetensors_find(st, (prefix + ".bias").c_str());

	*rows = 0;
	if (!tw)
		return 0;
	r.used.insert(prefix + ".weight");
	if (tw->ndim != 2 || tw->shape[1] != FEAT_CH || tw->shape[0] < 1 ||
	    tw->shape[0] > INT32_MAX) {
		r.misfit.push_back(prefix + ".weight " + shape_str(tw->shape, (size_t)tw->ndim) +
		                   " not [N," + std::to_string(FEAT_CH) + "]");
		return 0;
	}
	if (tb) {
		r.used.insert(prefix + ".bias");
		if (tb->ndim != 1 || tb->shape[0] != tw->shape[0]) {
			r.misfit.push_back(prefix + ".bias " +
			                   shape_str(tb->shape, (size_t)tb->ndim) + " not [" +
			                   std::to_string(tw->shape[0]) + "]");
			return 0;
		}
		if (tensor_load(tb, b, err) < 0)
			return -1;
	}
	*rows = (int)tw->shape[0];
	return tensor_load(tw, w, err);
}

/* num_batches_tracked counts training steps; inference never reads it, and
 * files from some exporters lack it, so it is accepted when present. */
void accept_bn_counters(const struct safetensors *st, const model &m, key_report &r)
{
	for (const slot &s : m.slots) {
		const std::string tail = ".running_var";
		std::string key;
		const struct st_tensor *t;

		if (s.key.size() <= tail.size() ||
		    s.key.compare(s.key.size() - tail.size(), tail.size(), tail))
			continue;
		key = s.key.substr(0, s.key.size() - tail.size()) + ".num_batches_tracked";
		t = safetensors_find(st, key.c_str());
		if (t && t->numel <= 1)
			r.used.insert(key);
	}
}

int load_weights(model &m, const struct safetensors *st, const char *path, int want_dim,
                 struct err *err)
{
	key_report r;
	int rows;
	std::string msg;

	for (slot &s : m.slots)
		if (load_slot(st, s, r, err) < 0)
			return err_prefix(err, "%s", path);
	accept_bn_counters(st, m, r);
	if (load_linear(st, "classifier", &m.cls_w, &m.cls_b, &m.ncls, r, err) < 0 ||
	    load_linear(st, "head.fc", &m.fc_w, &m.fc_b, &rows, r, err) < 0)
		return err_prefix(err, "%s", path);
	for (size_t i = 0; i < st->count; i++)
		if (!r.used.count(st->tensors[i].name))
			r.unexpected.push_back(st->tensors[i].name);

	if (!r.missing.empty())
		msg += "; " + list_str(r.missing, "missing");
	if (!r.unexpected.empty())
		msg += "; " + list_str(r.unexpected, "unexpected");
	if (!r.misfit.empty())
		msg += "; " + list_str(r.misfit, "with other shapes");
	if (!msg.empty())
		return err_set(err, ERR_FATAL, "%s does not fit %s: %s", path, m.arch->names[0],
		               msg.c_str() + 2);

	if (rows > 0 && want_dim > 0 && rows != want_dim)
		return err_set(err, ERR_FATAL,
		               "%s: head.fc.weight gives %d-d embeddings, embedding_size is %d",
		               path, rows, want_dim);
	if (rows > 0)
		m.dim = rows;
	else if (want_dim > 0 && want_dim != FEAT_CH)
		log_warn("model",
		         "weights have no embedding head; embeddings are the pooled features",
		         "weights=%s embedding_size=%d dim=%d", path, want_dim, (int)FEAT_CH);
	return 0;
}

/* y = conv(x) * s + (bias - mean * s), s = gamma / sqrt(var + eps): the BN is
 * affine per output channel, so it moves into the conv's weight and bias.
 * Computed in double to keep the folded weights as close as float allows. */
void fold_bn(conv_bn &c, double eps)
{
	torch::Tensor scale =
	    c.bn_w.to(torch::kDouble) * (c.bn_var.to(torch::kDouble) + eps).rsqrt();

	c.fw = (c.w.to(torch::kDouble) * scale.view({-1, 1, 1, 1})).to(torch::kFloat);
	c.fb = (c.bn_b.to(torch::kDouble) - c.bn_mean.to(torch::kDouble) * scale).to(torch::kFloat);
}

template <typename F> void for_each_conv(model &m, F f)
{
	f(m.stem);
	for (block &b : m.blocks) {
		for (conv_bn &c : b.pre)
			f(c);
		f(b.proj);
	}
	f(m.head);
}

/* Move every tensor to the model's device; conv weights also to the layout
 * the convolutions will run in, so that it is not converted per call. */
void place_tensors(model &m)
{
	auto place = [&m](torch::Tensor &t) {
		if (!t.defined())
			return;
		t = t.to(m.device);
		if (m.channels_last && t.dim() == 4)
			t = t.contiguous(torch::MemoryFormat::ChannelsLast);
	};

	for (slot &s : m.slots)
		place(*s.dst);
	for_each_conv(m, [&](conv_bn &c) {
		place(c.fw);
		place(c.fb);
	});
	place(m.fc_w);
	place(m.fc_b);
	place(m.cls_w);
	place(m.cls_b);
}

int parse_device(const char *name, torch::Device *dev, struct err *err)
{
	std::string s = name && *name ? name : "cpu";

	if (s != "cpu" && s != "cuda" && s.compare(0, 5, "cuda:"))
		return err_set(err, ERR_FATAL, "unknown device %s (use cpu, cuda or cuda:N)",
		               s.c_str());
	/* LIMIT: the CUDA path (embed_cuda) has never run on a GPU: the build
	 * machines have a CPU-only libtorch and no GPU. */
	*dev = torch::Device(s);
	if (dev->is_cuda() && !torch::cuda::is_available())
		return err_set(err, ERR_FATAL,
		               "device %s: no CUDA in this process (libtorch built for CPU only, "
		               "or no GPU visible); use device cpu",
		               s.c_str());
	if (dev->is_cuda() && dev->has_index() && dev->index() >= (int)torch::cuda::device_count())
		return err_set(err, ERR_FATAL, "device %s: only %d CUDA devices", s.c_str(),
		               (int)torch::cuda::device_count());
	return 0;
}

/* ---- CPU buffer cache ----
 *
 * glibc serves every allocation above 32 MB (and, until its threshold adapts,
 * many smaller ones) with a fresh mmap, so each forward at 512 px faulted in
 * and zeroed its activations again: on 2 cores that system time was about as
 * large as the compute. A forward asks for the same sizes every batch, so
 * libtorch's big CPU buffers are kept on release and handed out again for the
 * same size. Small buffers go to the default allocator, which does well. */
class buffer_cache final : public c10::Allocator
{
      public:
	static constexpr size_t MIN_BYTES = 1u << 20;
	static constexpr size_t GRAIN = 1u << 16;
	/* LIMIT: a fixed bound on idle cached bytes rather than a config key;
	 * batch 8 at 512 px keeps about 1 GB in use. */
	static constexpr size_t CAP_BYTES = (size_t)2 << 30;

	explicit buffer_cache(c10::Allocator *base) : base_(base), base_free_(base->raw_deleter())
	{
	}

	c10::DataPtr allocate(size_t n) const override
	{
		size_t sz = (n + GRAIN - 1) / GRAIN * GRAIN;
		void *p = nullptr;

		if (n < MIN_BYTES)
			return base_->allocate(n);
		{
			std::lock_guard<std::mutex> lock(mu_);
			auto it = idle_.find(sz);

			if (it != idle_.end()) {
				p = it->second;
				idle_.erase(it);
				idle_bytes_ -= sz;
			}
		}
		if (!p) {
			try {
				p = c10::alloc_cpu(sz);
			} catch (const c10::Error &) {
				trim();
				p = c10::alloc_cpu(sz);
			}
		}
		std::lock_guard<std::mutex> lock(mu_);
		live_[p] = sz;
		/* data == context, as raw_allocate() (used by oneDNN) requires. */
		return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
	}

	c10::DeleterFnPtr raw_deleter() const override
	{
		return &release;
	}

	/* Give every idle buffer back to the system. */
	void trim() const
	{
		std::lock_guard<std::mutex> lock(mu_);

		for (auto &kv : idle_)
			c10::free_cpu(kv.second);
		idle_.clear();
		idle_bytes_ = 0;
	}

	/* Trim the installed cache, if there is one. */
	static void trim_installed()
	{
		if (the_)
			the_->trim();
	}

	static buffer_cache *install()
	{
		static std::once_flag once;

		/* Never destroyed: tensors may be freed during static destruction. */
		std::call_once(once, [] {
			the_ = new buffer_cache(c10::GetCPUAllocator());
			c10::SetCPUAllocator(the_);
		});
		return the_;
	}

      private:
	/* Buffers that this cache did not hand out (small ones, or any allocated
	 * before it was installed) go back to the allocator they came from. */
	static void release(void *p)
	{
		buffer_cache *c = the_;
		std::unique_lock<std::mutex> lock(c->mu_);
		auto it = c->live_.find(p);
		size_t sz;

		if (it == c->live_.end()) {
			lock.unlock();
			c->base_free_(p);
			return;
		}
		sz = it->second;
		c->live_.erase(it);
		if (c->idle_bytes_ + sz <= CAP_BYTES) {
			c->idle_.emplace(sz, p);
			c->idle_bytes_ += sz;
			return;
		}
		lock.unlock();
		c10::free_cpu(p);
	}

	static buffer_cache *the_;
	c10::Allocator *base_;
	c10::DeleterFnPtr base_free_;
	mutable std::mutex mu_;
	mutable std::unordered_map<void *, size_t> live_;
	mutable std::multimap<size_t, void *> idle_;
	mutable size_t idle_bytes_ = 0;
};

buffer_cache *buffer_cache::the_ = nullptr;

/* ---- forward ---- */

torch::Tensor activate(const model &m, torch::Tensor x, bool inplace)
{
	if (m.arch->act == ACT_SILU)
		return inplace ? torch::silu_(x) : torch::silu(x);
	return inplace ? torch::hardtanh_(x, 0, 6) : torch::hardtanh(x, 0, 6);
}

/* TF "SAME" for a stride-S conv: the output is ceil(n/S) and the padding
 * that needs, split with the odd element after. Returns the total. */
int64_t same_pad(int64_t n, int64_t k, int64_t s)
{
	int64_t out = (n + s - 1) / s;

	return std::max<int64_t>((out - 1) * s + k - n, 0);
}

/* TRAINING runs the BN on batch statistics and updates its running stats
 * (the unfolded model only); otherwise activations may be updated in place. */
torch::Tensor conv_forward(const model &m, const conv_bn &c, torch::Tensor x, bool training)
{
	int64_t ph = (c.k - 1) / 2, pw = ph;

	if (c.stride > 1) {
		int64_t th = same_pad(x.size(2), c.k, c.stride);
		int64_t tw = same_pad(x.size(3), c.k, c.stride);

		/* The symmetric part goes to the conv; only an odd extra row or
		 * column at the bottom or right costs a padded copy. */
		ph = th / 2;
		pw = tw / 2;
		if (th % 2 || tw % 2)
			x = torch::constant_pad_nd(x, {0, tw % 2, 0, th % 2}, 0);
	}
	if (m.folded) {
		x = torch::conv2d(x, c.fw, c.fb, {c.stride, c.stride}, {ph, pw}, {1, 1}, c.groups);
	} else {
		x = torch::conv2d(x, c.w, {}, {c.stride, c.stride}, {ph, pw}, {1, 1}, c.groups);
		if (m.calib)
			(*m.calib)[&c].add(x);
		x = torch::batch_norm(x, c.bn_w, c.bn_b, c.bn_mean, c.bn_var, training, 0.1,
		                      m.arch->bn_eps, false);
	}
	return c.act ? activate(m, x, !training) : x;
}

/* x * sigmoid(expand(silu(reduce(mean_hw(x))))); the 1x1 convs on a 1x1 map
 * are linear layers. */
torch::Tensor se_forward(const se_unit &s, torch::Tensor x, bool training)
{
	torch::Tensor g = x.mean({2, 3});

	g = torch::silu(torch::linear(g, s.rw.flatten(1), s.rb));
	g = torch::linear(g, s.ew.flatten(1), s.eb).sigmoid();
	g = g.view({g.size(0), g.size(1), 1, 1});
	return training ? x * g : x.mul_(g);
}

/* forward_features: N x 3 x H x W to N x 1280 x ceil(H/32) x ceil(W/32). */
torch::Tensor backbone_forward(const model &m, torch::Tensor x, bool training)
{
	x = conv_forward(m, m.stem, x, training);
	for (const block &b : m.blocks) {
		torch::Tensor shortcut = x;

		for (const conv_bn &c : b.pre)
			x = conv_forward(m, c, x, training);
		if (b.has_se)
			x = se_forward(b.se, x, training);
		x = conv_forward(m, b.proj, x, training);
		if (b.skip)
			x = training ? x + shortcut : x.add_(shortcut);
	}
	return conv_forward(m, m.head, x, training);
}

/* LIMIT: the GeM exponent comes from the options; a learned p stored in a
 * weights file is not read (the key would be reported as unexpected). */
torch::Tensor pool_forward(const model &m, const torch::Tensor &x, enum model_pool pool)
{
	if (pool == MODEL_POOL_GEM)
		return x.clamp_min(1e-6).pow(m.gem_p).mean({2, 3}).pow(1.0 / m.gem_p);
	return x.mean({2, 3});
}

/* Pool, then (dropout is the identity outside training) the optional linear
 * head, then L2 normalisation. */
torch::Tensor embed_forward(const model &m, const torch::Tensor &feat)
{
	torch::Tensor y = pool_forward(m, feat, m.pool);

	if (m.fc_w.defined())
		y = torch::linear(y, m.fc_w, m.fc_b);
	return y / y.norm(2, 1, true).clamp_min(1e-12);
}

double now_s()
{
	using clk = std::chrono::steady_clock;

	return std::chrono::duration<double>(clk::now().time_since_epoch()).count();
}

/* Embeddings of X (already on the device, in the model's layout), still on the device. */
torch::Tensor embed_on_device(const model &m, const torch::Tensor &x)
{
	if (!m.autocast)
		return embed_forward(m, backbone_forward(m, x, false));

	/* Mixed precision: float16 convolutions, float32 pooling, head and norm. */
	at::autocast::set_enabled(true);
	at::autocast::increment_nesting();
	try {
		torch::Tensor feat = backbone_forward(m, x, false).to(torch::kFloat);

		if (at::autocast::decrement_nesting() == 0)
			at::autocast::clear_cache();
		at::autocast::set_enabled(false);
		return embed_forward(m, feat);
	} catch (...) {
		if (at::autocast::decrement_nesting() == 0)
			at::autocast::clear_cache();
		at::autocast::set_enabled(false);
		throw;
	}
}

/* A pinned host buffer of at least NUMEL floats (kept for the next call). */
float *pinned_buffer(model &m, int k, int64_t numel)
{
	if (!m.pinned[k].defined() || m.pinned[k].numel() < numel)
		m.pinned[k] = torch::empty(
		    {numel}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true));
	return m.pinned[k].data_ptr<float>();
}

/* CUDA: the batch goes up in two chunks through pinned buffers, each copy non-blocking;
 * with the CUDA headers (MODEL_WITH_CUDA) the copies run on their own stream, so that the
 * second chunk's upload overlaps the first chunk's forward, and an event per buffer keeps
 * the host from refilling a buffer whose upload has not finished. */
torch::Tensor embed_cuda(model &m, const float *in, int n, int h, int w, double *forward_s)
{
	const int64_t per = 3 * (int64_t)h * w;
	const int chunk = n > 1 ? (n + 1) / 2 : 1;
	std::vector<torch::Tensor> parts;
	double t0 = now_s(), host_s = 0;

	for (int at = 0, k = 0; at < n; at += chunk, k ^= 1) {
		int c = std::min(chunk, n - at);
		torch::Tensor host, x;
		float *buf;
		double t1;

#ifdef MODEL_WITH_CUDA
		m.uploaded[k].synchronize();
#endif
		t1 = now_s();
		buf = pinned_buffer(m, k, c * per);
		std::memcpy(buf, in + at * per, (size_t)(c * per) * sizeof(float));
		host_s += now_s() - t1;
		host = m.pinned[k].narrow(0, 0, c * per).view({c, 3, h, w});
#ifdef MODEL_WITH_CUDA
		{
			c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream();

			if (!m.copy_stream)
				m.copy_stream =
				    c10::cuda::getStreamFromPool(false, m.device.index());
			{
				c10::cuda::CUDAStreamGuard guard(*m.copy_stream);

				x = host.to(m.device, /*non_blocking=*/true);
				m.uploaded[k].record(*m.copy_stream);
			}
			m.uploaded[k].block(compute);
			x.record_stream(compute.unwrap());
		}
#else
		x = host.to(m.device, /*non_blocking=*/true);
#endif
		if (m.channels_last)
			x = x.contiguous(torch::MemoryFormat::ChannelsLast);
		parts.push_back(embed_on_device(m, x));
	}
	/* The copy back waits for the GPU; the forward's time is all but the host copies. */
	torch::Tensor y = torch::cat(parts).to(torch::kCPU);
	*forward_s += now_s() - t0 - host_s;
	return y;
}

int check_call(const model *m, const float *in, int n, int h, int w, const float *out,
               struct err *err)
{
	if (!m || !in || !out)
		return err_set(err, ERR_FATAL, "model: NULL model or buffer");
	if (n < 1 || n > MAX_BATCH || h < 1 || h > MAX_SIDE || w < 1 || w > MAX_SIDE)
		return err_set(err, ERR_FATAL,
		               "model: batch %dx3x%dx%d outside 1..%d images of 1..%d pixels", n, h,
		               w, MAX_BATCH, MAX_SIDE);
	return 0;
}

torch::Tensor input_tensor(const model &m, const float *in, int n, int h, int w)
{
	/* from_blob wants a mutable pointer; nothing writes to the input. */
	torch::Tensor x = torch::from_blob(const_cast<float *>(in), {n, 3, h, w}, torch::kFloat);

	x = x.to(m.device);
	if (m.channels_last)
		x = x.contiguous(torch::MemoryFormat::ChannelsLast);
	return x;
}

void copy_out(const torch::Tensor &t, float *out)
{
	torch::Tensor c = t.to(torch::kCPU).contiguous();

	std::memcpy(out, c.data_ptr<float>(), (size_t)c.numel() * sizeof(float));
}

using net::guarded;

int as_fatal(struct err *err)
{
	if (err)
		err->kind = ERR_FATAL;
	return -1;
}

/* timm's initialisation for these backbones: convs from N(0, 2 / fan_out)
 * with fan_out = k * k * out / groups, BatchNorm as the identity, SE biases
 * zero. Draws from libtorch's default generator. */
void init_random(model &m)
{
	auto conv_init = [](int64_t out, int64_t k, int64_t groups, std::vector<int64_t> shape) {
		double fan_out = (double)(k * k * out / groups);

		return torch::randn(shape) * std::sqrt(2.0 / fan_out);
	};

	for_each_conv(m, [&](conv_bn &c) {
		c.w = conv_init(c.out, c.k, c.groups, {c.out, c.in / c.groups, c.k, c.k});
		c.bn_w = torch::ones({c.out});
		c.bn_b = torch::zeros({c.out});
		c.bn_mean = torch::zeros({c.out});
		c.bn_var = torch::ones({c.out});
	});
	for (block &b : m.blocks) {
		se_unit &e = b.se;

		if (!b.has_se)
			continue;
		e.rw = conv_init(e.rd, 1, 1, {e.rd, e.ch, 1, 1});
		e.rb = torch::zeros({e.rd});
		e.ew = conv_init(e.ch, 1, 1, {e.ch, e.rd, 1, 1});
		e.eb = torch::zeros({e.ch});
	}
}

int model_setup(model &m, const struct model_opts *o, struct safetensors **st, struct err *err)
{
	m.arch = arch_find(o->backbone);
	if (!m.arch)
		return err_set(
		    err, ERR_FATAL,
		    "unknown backbone %s (known: tf_efficientnet_b0_ns, mobilenetv2_100)",
		    o->backbone);
	if (o->embedding_size < 0)
		return err_set(err, ERR_FATAL, "embedding_size %d is negative", o->embedding_size);
	if (o->pool != MODEL_POOL_AVG && o->pool != MODEL_POOL_GEM)
		return err_set(err, ERR_FATAL, "unknown pooling %d", (int)o->pool);
	if (parse_device(o->device, &m.device, err) < 0)
		return -1;
	if (o->precision != MODEL_PREC_FP32 && o->precision != MODEL_PREC_FP16)
		return err_set(err, ERR_FATAL, "unknown precision %d", (int)o->precision);
	/* bf16 autocast measured ~4x slower than float32 on these AVX2/AVX-512 CPUs */
	if (o->precision == MODEL_PREC_FP16 && !m.device.is_cuda())
		return err_set(err, ERR_FATAL, "precision fp16 needs a CUDA device, not %s",
		               m.device.str().c_str());
	m.autocast = o->precision == MODEL_PREC_FP16;
	if (o->max_forward < 0)
		return err_set(err, ERR_FATAL, "max_forward %d is negative", o->max_forward);
	m.max_forward = o->max_forward;
	m.device_name = m.device.str();
	m.pool = o->pool;
	m.gem_p = o->gem_p > 0 ? o->gem_p : 3.0;
	m.channels_last = o->channels_last != 0;
	/* LIMIT: libtorch's intra-op thread count is per process, so two models
	 * opened with different thread counts share the last one set. */
	if (o->threads > 0)
		torch::set_num_threads(o->threads);
	if (m.device.is_cpu())
		buffer_cache::install();

	build_layers(m);
	collect_slots(m);
	torch::NoGradGuard no_grad;
	if (!o->weights) {
		init_random(m);
	} else {
		/* A weights file that cannot be used stops the run, whatever the
		 * reason. */
		if (safetensors_open(o->weights, st, err) < 0)
			return as_fatal(err);
		if (load_weights(m, *st, o->weights, o->embedding_size, err) < 0)
			return as_fatal(err);
	}
	if (!o->keep_bn) {
		for_each_conv(m, [&](conv_bn &c) { fold_bn(c, m.arch->bn_eps); });
		m.folded = true;
	}
	place_tensors(m);
	return 0;
}

} // namespace

namespace net
{

struct model *open(const struct model_opts *o, struct err *err)
{
	std::unique_ptr<model> m;
	struct safetensors *st = nullptr;
	struct model_opts opts;
	int rc;

	if (!o || !o->backbone) {
		err_set(err, ERR_FATAL, "model: a backbone is required");
		return nullptr;
	}
	opts = *o;
	opts.keep_bn = 1;
	rc = guarded(err, "model open", [&]() {
		m.reset(new model());
		return model_setup(*m, &opts, &st, err);
	});
	safetensors_close(st);
	return rc < 0 ? nullptr : m.release();
}

std::vector<named_tensor> tensors(struct model &m)
{
	std::vector<named_tensor> v;

	auto ends = [](const std::string &k, const std::string &tail) {
		return k.size() > tail.size() &&
		       !k.compare(k.size() - tail.size(), tail.size(), tail);
	};

	for (slot &s : m.slots)
		v.push_back(
		    {s.key, s.dst, !ends(s.key, ".running_mean") && !ends(s.key, ".running_var")});
	return v;
}

bool head(const struct model &m, torch::Tensor *w, torch::Tensor *b)
{
	if (!m.fc_w.defined())
		return false;
	*w = m.fc_w;
	*b = m.fc_b.defined() ? m.fc_b : torch::zeros({m.fc_w.size(0)}, m.fc_w.options());
	return true;
}

torch::Tensor input(const struct model &m, const float *in, int n, int h, int w)
{
	return input_tensor(m, in, n, h, w).clone();
}

torch::Tensor features(const struct model &m, const torch::Tensor &x, bool training)
{
	return pool_forward(m, backbone_forward(m, x, training), m.pool);
}

torch::Device device(const struct model &m)
{
	return m.device;
}

void bn_sums::add(const torch::Tensor &x)
{
	torch::Tensor d = x.to(torch::kDouble);
	torch::Tensor s = d.sum({0, 2, 3}), q = (d * d).sum({0, 2, 3});

	sum = sum.defined() ? sum + s : s;
	sumsq = sumsq.defined() ? sumsq + q : q;
	count += (double)(x.size(0) * x.size(2) * x.size(3));
}

bool bn_folded(struct model &m)
{
	bool folded = true;

	for_each_conv(m, [&](conv_bn &c) {
		folded = folded && c.bn_mean.abs().max().item<double>() == 0 &&
		         (c.bn_var - 1).abs().max().item<double>() < 1e-3 &&
		         (c.bn_w - 1).abs().max().item<double>() == 0;
	});
	return folded;
}

void bn_calibrate_begin(struct model &m)
{
	m.calib.reset(new std::unordered_map<const conv_bn *, bn_sums>());
}

/* y = g (z - m) / sqrt(v + eps) + b gives the same y with the measured mean
 * and variance (mu, var) as running stats when g' = g sqrt(var + eps) /
 * sqrt(v + eps) and b' = b + g (mu - m) / sqrt(v + eps). */
int bn_calibrate_end(struct model &m)
{
	int n = 0;
	double eps = m.arch->bn_eps;

	if (!m.calib)
		return 0;
	torch::NoGradGuard no_grad;
	for_each_conv(m, [&](conv_bn &c) {
		auto it = m.calib->find(&c);

		if (it == m.calib->end() || it->second.count < 2)
			return;
		const bn_sums &s = it->second;
		torch::Tensor mu = s.sum / s.count;
		torch::Tensor var = (s.sumsq / s.count - mu * mu).clamp_min(0);
		torch::Tensor old_sd = (c.bn_var.to(torch::kDouble) + eps).sqrt();
		torch::Tensor g = c.bn_w.to(torch::kDouble);
		torch::Tensor g2 = g * (var + eps).sqrt() / old_sd;
		torch::Tensor b2 =
		    c.bn_b.to(torch::kDouble) + g * (mu - c.bn_mean.to(torch::kDouble)) / old_sd;

		c.bn_w.copy_(g2);
		c.bn_b.copy_(b2);
		c.bn_mean.copy_(mu);
		c.bn_var.copy_(var);
		n++;
	});
	m.calib.reset();
	return n;
}

} // namespace net

extern "C" {

struct model *model_open(const struct model_opts *opts, struct err *err)
{
	std::unique_ptr<model> m;
	struct safetensors *st = nullptr;
	int rc;

	if (!opts || !opts->backbone || !opts->weights) {
		err_set(err, ERR_FATAL, "model: backbone and weights are required");
		return nullptr;
	}
	rc = guarded(err, "model open", [&]() {
		m.reset(new model());
		return model_setup(*m, opts, &st, err);
	});
	safetensors_close(st);
	if (rc < 0)
		return nullptr;
	log_info("model", "weights loaded",
	         "backbone=%s weights=%s head=%d dim=%d classes=%d device=%s threads=%d "
	         "fold_bn=%d channels_last=%d",
	         opts->backbone, opts->weights, m->fc_w.defined() ? 1 : 0, m->dim, m->ncls,
	         m->device.str().c_str(), torch::get_num_threads(), m->folded ? 1 : 0,
	         m->channels_last ? 1 : 0);
	return m.release();
}

int model_dim(const struct model *m)
{
	return m->dim;
}

int model_has_head(const struct model *m)
{
	return m->fc_w.defined() ? 1 : 0;
}

int model_embed(struct model *m, const float *in, int n, int h, int w, float *out, struct err *err)
{
	if (check_call(m, in, n, h, w, out, err) < 0)
		return -1;
	return guarded(err, "model embed", [&]() {
		c10::InferenceMode guard;
		double t0 = now_s(), fwd = 0;

		if (m->device.is_cuda()) {
			copy_out(embed_cuda(*m, in, n, h, w, &fwd), out);
		} else {
			int chunk = m->max_forward
			                ? m->max_forward
			                : (int)std::max<int64_t>(1, CPU_PIXELS_PER_FORWARD /
			                                                ((int64_t)h * w));

			for (int at = 0; at < n; at += chunk) {
				int c = std::min(chunk, n - at);
				torch::Tensor x =
				    input_tensor(*m, in + (size_t)at * 3 * h * w, c, h, w);
				double t1 = now_s();
				torch::Tensor y = embed_on_device(*m, x);

				fwd += now_s() - t1;
				copy_out(y, out + (size_t)at * (size_t)m->dim);
			}
		}
		m->stats.calls++;
		m->stats.images += n;
		m->stats.forward_s += fwd;
		m->stats.call_s += now_s() - t0;
		return 0;
	});
}

int model_features(struct model *m, const float *in, int n, int h, int w, float *out,
                   struct err *err)
{
	if (check_call(m, in, n, h, w, out, err) < 0)
		return -1;
	return guarded(err, "model features", [&]() {
		c10::InferenceMode guard;
		torch::Tensor feat = backbone_forward(*m, input_tensor(*m, in, n, h, w), false);

		copy_out(pool_forward(*m, feat, m->pool), out);
		return 0;
	});
}

int model_features_unpooled(struct model *m, const float *in, int n, int h, int w, float *out,
                            size_t cap, struct err *err)
{
	size_t need = (size_t)n * FEAT_CH * (size_t)((h + 31) / 32) * (size_t)((w + 31) / 32);

	if (check_call(m, in, n, h, w, out, err) < 0)
		return -1;
	if (cap < need)
		return err_set(err, ERR_FATAL,
		               "model: unpooled features need %zu floats, buffer has %zu", need,
		               cap);
	return guarded(err, "model features", [&]() {
		c10::InferenceMode guard;

		copy_out(backbone_forward(*m, input_tensor(*m, in, n, h, w), false), out);
		return 0;
	});
}

int model_logits(struct model *m, const float *in, int n, int h, int w, float *out, int cap_classes,
                 int *ncls, struct err *err)
{
	if (check_call(m, in, n, h, w, out, err) < 0)
		return -1;
	if (!m->cls_w.defined())
		return err_set(err, ERR_FATAL, "model: the weights have no classifier");
	if (cap_classes < m->ncls)
		return err_set(err, ERR_FATAL, "model: %d classes do not fit in rows of %d",
		               m->ncls, cap_classes);
	return guarded(err, "model logits", [&]() {
		c10::InferenceMode guard;
		torch::Tensor feat = backbone_forward(*m, input_tensor(*m, in, n, h, w), false);
		torch::Tensor y =
		    torch::linear(pool_forward(*m, feat, MODEL_POOL_AVG), m->cls_w, m->cls_b);

		y = y.to(torch::kCPU).contiguous();
		for (int i = 0; i < n; i++)
			std::memcpy(out + (size_t)i * (size_t)cap_classes, y[i].data_ptr<float>(),
			            (size_t)m->ncls * sizeof(float));
		if (ncls)
			*ncls = m->ncls;
		return 0;
	});
}

void model_stats_get(const struct model *m, struct model_stats *out)
{
	*out = m->stats;
}

const char *model_device(const struct model *m)
{
	return m->device_name.c_str();
}

void model_close(struct model *m)
{
	delete m;
	buffer_cache::trim_installed();
}

} // extern "C"
