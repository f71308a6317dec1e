# Sourced by bench-train.sh, bench-train-ab.sh and bench-train-phases.sh (after they cd to the
# repository root, $root): the assets, the binaries and the built-in datasets bench_train reads.
# `proxal data import-builtin` rewrites the same table when it is already there, as `make demo`
# does; the assets are the repository's assets/ unless $PROXAL_ASSETS says otherwise.
bench_train_setup() {
  scripts/fetch-assets.sh >/dev/null
  export PROXAL_ASSETS="${PROXAL_ASSETS:-$root/assets}"
  ${CARGO:-cargo} build --bin proxal --bin bench_train
  for d in banking77 clinc150; do
    target/debug/proxal data import-builtin "$d" >/dev/null
  done
}
