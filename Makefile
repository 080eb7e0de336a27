# Build, test and run the photo-grouping pipeline.
#   make            build bin/pipeline-run
#   make check      run the whole test suite (unit, model, integration, e2e)
#   make demo       run the nightly job over the sample ads and print the groups
#   make bench      print the benchmark table (never part of check)
#   make install    binary, sql/, configs, systemd units (PREFIX, DESTDIR, ...)
#   make uninstall  remove what install put there, except configs and state
#   V=1             show the commands
#   TORCH_DIR=/opt/libtorch  build against the official libtorch distribution (cxx11 ABI)
#                   instead of Debian's; with its CUDA libraries the model can run on a GPU
#                   (model.device: cuda). CUDA_HOME (default /usr/local/cuda) gives the CUDA
#                   toolkit's headers.

SHARED ?= $(abspath ../shared)
BUILD ?= build
CC ?= cc
CXX ?= g++

PKGS := vips libpq yaml-0.1 rdkafka libcjson libcurl libsystemd
ifdef TORCH_DIR
CUDA_HOME ?= /usr/local/cuda
TORCH_INC := $(TORCH_DIR)/include -isystem $(TORCH_DIR)/include/torch/csrc/api/include
TORCH_LIBS := -L$(TORCH_DIR)/lib -Wl,-rpath,$(TORCH_DIR)/lib -ltorch_cpu -lc10
ifneq ($(wildcard $(TORCH_DIR)/lib/libtorch_cuda.so),)
# torch_cuda only registers kernels, so nothing refers to it: keep it linked regardless.
TORCH_LIBS += -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed
CXXFLAGS_CUDA := -DMODEL_WITH_CUDA -isystem $(CUDA_HOME)/include
endif
else
TORCH_INC ?= /usr/include/torch/csrc/api/include
TORCH_LIBS ?= -ltorch_cpu -lc10
endif

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wvla -Wno-format-truncation
CPPFLAGS += -Ipipeline -Istages -MMD -MP -D_GNU_SOURCE
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -pthread $(WARN) $(shell pkg-config --cflags $(PKGS))
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++17 -pthread -Wall -Wextra -Wno-unused-parameter -isystem $(TORCH_INC) \
	$(CXXFLAGS_CUDA)
LDLIBS += $(shell pkg-config --libs $(PKGS)) $(TORCH_LIBS) -lm -lpthread

OUT_BIN := bin
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
BUILD := build-san
OUT_BIN := build-san/bin
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_C := $(filter-out pipeline/main.c,$(wildcard pipeline/*.c stages/*.c))
LIB_CXX := $(wildcard stages/*.cpp)
LIB_OBJ := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/integration/%.c=$(BUILD)/itests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
# Fuzz targets: every tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput. `make fuzz`
# builds each with clang's libFuzzer (+ASan/UBSan) into build-fuzz/ and runs it for
# FUZZ_SECONDS on tests/fuzz/corpus/fuzz_NAME/ (seeds) and tests/fuzz/regress/fuzz_NAME/
# (inputs that once failed); new finds land in var/fuzz/fuzz_NAME/. The normal suite replays
# both folders through the same file built with replay.c as main().
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)
FUZZ_BUILD := build-fuzz
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_CC ?= clang
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -pthread $(WARN) -Wno-unknown-warning-option $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link $(shell pkg-config --cflags $(PKGS))
FUZZ_LDLIBS := $(shell pkg-config --libs $(PKGS)) -lm -lpthread
# extra read-only seeds for a target
FUZZ_SEEDS_fuzz_config := $(SHARED)/configs

# install layout; configs under CONFDIR are never overwritten
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/pipeline-run
SYSCONFDIR ?= /etc
CONFDIR ?= $(SYSCONFDIR)/pipeline-run
STATEDIR ?= /var/lib/pipeline-run
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
UNITS_IN := $(notdir $(wildcard systemd/*.service.in))
TIMERS := $(notdir $(wildcard systemd/*.timer))
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@CONFDIR@|$(CONFDIR)|g' \
	-e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|/usr/local/share/pipeline-run|$(DATADIR)|g' \
	-e 's|/var/lib/pipeline-run|$(STATEDIR)|g'

.PHONY: all check check-san unit demo bench clean format format-check deps fuzz install \
	uninstall
# keep test objects: they are intermediate files of the test binaries' rules
.SECONDARY:
all: $(OUT_BIN)/pipeline-run

deps:
	$(Q)scripts/install-deps

$(OUT_BIN)/pipeline-run: $(BUILD)/pipeline/main.o $(BUILD)/libpipeline.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lz

$(BUILD)/libpipeline.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libpipeline.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lz

$(BUILD)/itests/%: $(BUILD)/tests/integration/%.o $(BUILD)/libpipeline.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lz

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(BUILD)/libpipeline.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lz

$(BUILD)/fuzz-replay/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(BUILD)/libpipeline.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer builds: the C part of the pipeline only (no libtorch), all of it instrumented
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libpipeline-c.a: $(LIB_C:%.c=$(FUZZ_BUILD)/%.o)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libpipeline-c.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS)

fuzz: deps $(FUZZ_BIN)
	$(Q)set -e; for bin in $(FUZZ_BIN); do \
		name=$${bin##*/}; out=var/fuzz/$$name; mkdir -p $$out/corpus; \
		echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
		$$bin -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=$$out/ $$out/corpus tests/fuzz/corpus/$$name \
			$$(test -d tests/fuzz/regress/$$name && echo tests/fuzz/regress/$$name) \
			$(foreach t,$(FUZZ_SRC:tests/fuzz/%.c=%),\
				$$(test $$name = $(t) && echo $(FUZZ_SEEDS_$(t)))) \
			2>$$out/log || { tail -n 40 $$out/log; \
			echo "fuzz: $$name failed; the input is in $$out/"; \
			echo "fuzz: fix it, then copy it to tests/fuzz/regress/$$name/"; \
			exit 1; }; \
		grep -E '^Done|stat::number_of_executed_units' $$out/log | tail -n 1; \
	done

unit: $(UNIT_BIN) $(ITEST_BIN) $(TOOL_BIN) $(FUZZ_REPLAY)

check: deps all unit
	$(Q)SHARED=$(SHARED) BUILD=$(BUILD) BIN=$(abspath $(OUT_BIN))/pipeline-run \
		SANITIZE=$(SANITIZE) SKIP="$(SKIP)" tests/run-all

# The suite under ASan+UBSan, for CI: everything but the long happy-path runs (end to end,
# ten times the photos, the same date twice, the sample ads through Kafka five times), which
# add minutes under the sanitizers and no code path the other tests miss.
SAN_SKIP ?= e2e/ integration/memory_bounded integration/rerun_identical integration/kafka_nightly
check-san:
	$(Q)$(MAKE) --no-print-directory check SANITIZE=1 SKIP="$(SAN_SKIP)"

demo: deps all
	$(Q)SHARED=$(SHARED) scripts/demo

bench: deps all unit
	$(Q)SHARED=$(SHARED) BUILD=$(BUILD) scripts/bench

FORMAT_SRC = $(wildcard pipeline/*.[ch] stages/*.[ch] stages/*.cpp tests/unit/*.c \
	tests/integration/*.c tests/tools/*.[ch] tests/fuzz/*.[ch] tests/lib/*.h)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format-check: ok"

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/configs/models \
		$(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(TMPFILESDIR)
	install -d -m 0750 $(DESTDIR)$(STATEDIR) $(DESTDIR)$(STATEDIR)/models
	install -m 0755 bin/pipeline-run $(DESTDIR)$(BINDIR)/pipeline-run
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 configs/models/*.yaml $(DESTDIR)$(DATADIR)/configs/models/
	$(SUBST) configs/pipeline.yaml >$(DESTDIR)$(DATADIR)/configs/pipeline.yaml
	for u in $(UNITS_IN); do \
		$(SUBST) systemd/$$u >$(DESTDIR)$(UNITDIR)/$${u%.in} || exit 1; done
	for t in $(TIMERS); do install -m 0644 systemd/$$t $(DESTDIR)$(UNITDIR)/$$t || exit 1; done
	$(SUBST) systemd/pipeline-run.sysusers >$(DESTDIR)$(SYSUSERSDIR)/pipeline-run.conf
	$(SUBST) systemd/pipeline-run.tmpfiles >$(DESTDIR)$(TMPFILESDIR)/pipeline-run.conf
	test -e $(DESTDIR)$(CONFDIR)/pipeline.yaml || \
		install -m 0644 $(DESTDIR)$(DATADIR)/configs/pipeline.yaml $(DESTDIR)$(CONFDIR)/
	test -e $(DESTDIR)$(CONFDIR)/model.yaml || install -m 0644 \
		configs/models/mobilenetv2_100-coral.yaml $(DESTDIR)$(CONFDIR)/model.yaml
	test -e $(DESTDIR)$(CONFDIR)/pgpass || install -m 0600 /dev/null $(DESTDIR)$(CONFDIR)/pgpass

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pipeline-run
	rm -rf $(DESTDIR)$(DATADIR)
	for u in $(UNITS_IN); do rm -f $(DESTDIR)$(UNITDIR)/$${u%.in}; done
	for t in $(TIMERS); do rm -f $(DESTDIR)$(UNITDIR)/$$t; done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/pipeline-run.conf $(DESTDIR)$(TMPFILESDIR)/pipeline-run.conf

clean:
	rm -rf build build-san build-fuzz bin

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
