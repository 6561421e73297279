#!/usr/bin/env bash
# The main job on the embedded synthetic data, from a fresh clone:
#   set up .venv -> render synth-celeba and synth-rafd into HDF5 shards -> train one StarGAN
#   generator on both (mask vector) -> translate held-out synth-celeba faces to hair colours
#   and to RaFD expressions -> runs/demo/translated/grid.png
# Re-running resumes: built datasets are kept, training continues from its last checkpoint.
# Training uses the stargan family's "demo" preset (`starkit train --options` lists its values).
# STARKIT_DEMO_ITERS overrides its number of training iterations; a new run then starts the
# mask push at the same share of them (three-quarters, as the preset's 2250 of 3000).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
starkit() { "${STARKIT_VENV:-.venv}/bin/starkit" "$@"; }

DATA="${STARKIT_DEMO_DATA:-data}"
RUN="${STARKIT_DEMO_RUN:-runs/demo}"
ITERS=()
PUSH=()
if [ -n "${STARKIT_DEMO_ITERS:-}" ]; then
    ITERS=(--iters "$STARKIT_DEMO_ITERS")
    PUSH=(--set "mask_sharpness_from=$(( STARKIT_DEMO_ITERS * 3 / 4 ))")
fi

for name in synth-celeba synth-rafd; do
    if [ -f "$DATA/$name/manifest.json" ]; then
        echo "demo: $DATA/$name already built"
    else
        starkit add-dataset "$name" --data "$DATA" --count 4000 --image-size 32
    fi
done

if [ -f "$RUN/checkpoints/latest.pt" ]; then
    starkit train --out "$RUN" --resume "${ITERS[@]}"
else
    starkit train --datasets synth-celeba,synth-rafd --data "$DATA" --out "$RUN" \
        --preset demo "${ITERS[@]}" "${PUSH[@]}"
fi

rm -rf "$RUN/inputs" "$RUN/translated"
starkit export synth-celeba --data "$DATA" --split test --count 6 --out "$RUN/inputs"
starkit translate --run "$RUN" --input "$RUN/inputs" --out "$RUN/translated" --grid \
    --source-dataset synth-celeba \
    --to Black_Hair --to Blond_Hair --to Brown_Hair --to Male=0 --to Male=1 \
    --to synth-rafd:happy --to synth-rafd:sad --to synth-rafd:surprised --to synth-rafd:angry
echo "demo: translated grid at $RUN/translated/grid.png; training samples in $RUN/samples/"
