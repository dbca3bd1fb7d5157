#!/usr/bin/env bash
# Produces the figures in benchmarks/RESULTS.md. Usage: benchmarks/run_all.sh /path/to/camvid
# Run on an otherwise idle machine: latency figures are only comparable when nothing else runs.
set -euo pipefail
CAMVID=${1:?usage: benchmarks/run_all.sh /path/to/camvid}
OUT=benchmarks/results
mkdir -p "$OUT"
for tag in fast_scnn.camvid lraspp_mobilenet_v3_large.camvid; do
  segbench evaluate "$tag" --data "$CAMVID" --split val --json --quiet --output "$OUT/eval_$tag" --overwrite > "$OUT/eval_$tag.json"
done
# The shipped models at CamVid's 360 x 480, batch 1, 2 threads.
segbench benchmark fast_scnn.camvid lraspp_mobilenet_v3_large.camvid --size 360 480 --threads 2 --output "$OUT/zoo_360x480" --overwrite
# Every registered architecture (random weights) at 360 x 480, 21 classes.
segbench benchmark $(segbench models | awk 'NR>1 && $2 ~ /^[0-9.]+$/ {print $1}') --size 360 480 --threads 2 --min-time 1 --output "$OUT/all_360x480" --overwrite
# The main job on the full val split.
/usr/bin/time -v segbench compare fast_scnn.camvid lraspp_mobilenet_v3_large.camvid --data "$CAMVID" --threads 2 \
  --output "$OUT/compare_camvid_val" --overwrite --quiet 2> "$OUT/compare_camvid_val.time"
# The README's main job: no arguments (shipped sample, shipped models).
/usr/bin/time -v segbench compare --output "$OUT/compare_default" --overwrite --quiet 2> "$OUT/compare_default.time"
# Repeatability: the same benchmark three times (each case in a fresh subprocess); prints the spread of the medians.
python benchmarks/repeatability.py --runs 3 --out "$OUT/repeatability" -- fast_scnn --size 360x480 --threads 1
# Issue 26's side-by-side table (520 x 520, batch 1, all cores: torchvision eager, torch.compile, ONNX Runtime,
# OpenVINO LATENCY, NNCF int8 and segbench's best; the goals), written as this CPU kind's section of a copy of
# RESULTS.md (replacing that kind's section, keeping the others).
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
python benchmarks/machine_goals.py --out "$OUT/RESULTS.md"
