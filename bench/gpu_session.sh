#!/bin/bash
# The lent-GPU figures of issues 18 and 19 in one device run (docs/train.md "On a GPU"). Run from the repo root
# on the device machine, with the carried folders prepared here:
#   .gpu/repo.tar.gz  `git archive HEAD` (the committed tree: other sessions' uncommitted edits stay home)
#   .gpu/data/        the UR5e dataset (vla-collect ... sim.robot=ur5e), its statistics; the part-3 dataset only
#                     if the 64 MiB carry allows (part 3 is skipped without it)
#   .gpu/franka_assets.tar.gz  the Panda's MJCF + meshes out of gymnasium-robotics 1.4.2 (its 26 MB wheel does not
#                     fit the carry; sim_envs finds the folder with find_spec and never imports the package)
#   .whl/             wheels the device image lacks or has in another version (transformers 5.23.0, peft, hydra,
#                     mujoco 4, gymnasium, ...)          .gl/  libEGL & co. (docs of the device tool)
# Parts, each under its own `timeout`, each leaving its JSON in $OUT as soon as it has it:
#   1a  python bench/train.py --gpu-7b         7B LoRA step at batch 16 + vla-merge peak host memory (VmHWM)
#   1b  bench/gpu_session.py lora              real vla-train LoRA on the UR5e data: samples/s, peak GPU memory
#   2   bench/gpu_session.py protocol          vla-eval protocol=language with the 7B in bf16: s/episode, s/step
#   3   bench/gpu_session.py larger            a larger tiny preset trained there + the protocol (time left only)
#   wm  bench/gpu_session.py wm_speed        issue 22: a world model's imagined steps/s (.gpu/wm = its checkpoint)
# PARTS (default "1a 1b 2 3"): the parts to run, e.g. PARTS="wm 3".
# SKIP_MERGE=1: part 1a only writes the 7B base (one LoRA step, no vla-merge) when its figures are in already.
# BUDGET (seconds, default 530) bounds the whole script so that it returns before the run's own limit.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-530}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
HERE=$PWD
DATA=$HERE/.gpu/data
left() { echo $((BUDGET - ($(date +%s) - T0))); }
part() {  # part NAME SECONDS CMD...: run CMD under timeout (at most the time left), log its exit status
  local name=$1 limit=$2; shift 2
  local l; l=$(left)
  [ "$limit" -gt "$((l - 5))" ] && limit=$((l - 5))
  if [ "$limit" -lt 30 ]; then echo "== $name skipped: $l s left" | tee -a "$OUT/parts.log"; return; fi
  echo "== $name (timeout $limit s, $(date -u +%T))" | tee -a "$OUT/parts.log"
  timeout "$limit" "$@" >>"$OUT/parts.log" 2>&1
  echo "== $name exit $? after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/parts.log"
}

for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && \
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
mkdir -p /tmp/repo /tmp/assets
tar xzf .gpu/repo.tar.gz -C /tmp/repo && tar xzf .gpu/franka_assets.tar.gz -C /tmp/assets
export PYTHONPATH=/tmp/repo:/tmp/site:/tmp/assets MUJOCO_GL=egl PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cd /tmp/repo
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; free -g | head -2; df -h /tmp | tail -1
  python3 -c "import torch, transformers, peft, mujoco, hydra; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'peft', peft.__version__, 'mujoco', mujoco.__version__, torch.cuda.get_device_name())"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
echo "setup done after $(( $(date +%s) - T0 )) s"

want() { case " ${PARTS:-1a 1b 2 3} " in *" $1 "*) return 0;; esac; return 1; }
if want wm; then  # issue 22: a world model's imagined steps/s at batch 1 / 32 / 256 (.gpu/wm: its checkpoint)
  part wm 120 python3 bench/gpu_session.py wm_speed --policy "$HERE/.gpu/wm" --work /tmp/wm --steps 50 \
    --out "$OUT/wm_speed.json"
fi
if ! want 1a; then :
elif [ -n "${SKIP_MERGE:-}" ]; then  # 1a measured already: only write the 7B base that parts 1b and 2 use
  part 1a 150 python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'bench'); from train import \
bench_lora_step; print(bench_lora_step('openvla_7b', 'cuda', 16, save_base=Path('/tmp/w/base_7b'), tokenizer='tiny'))"
else
  part 1a 200 python3 bench/train.py --gpu-7b --work /tmp/w
fi
want 1a && cp bench/results/train.json "$OUT/train.json"
rm -rf /tmp/w/merged_7b  # 15 GB of disk the next parts need
want 1b && part 1b 160 python3 bench/gpu_session.py lora --base /tmp/w/base_7b --data "$DATA/sim_ur5e_liftcube_low/1.0.0" \
  --work /tmp/lora --steps 20 --log-every 5 --out "$OUT/lora.json"
rm -rf /tmp/lora
want 2 && part 2 150 python3 bench/gpu_session.py protocol --policy /tmp/w/base_7b --stats "$DATA/stats_ur5e.json" \
  --work /tmp/proto --task LiftNamedCube --seeds 2 --conditions swap --out "$OUT/protocol.json"
L=$(left)
if want 3 && [ "$L" -ge 150 ] && [ -d "$DATA/vcap_placesidecubeonplate_low" ]; then
  part 3 "$L" python3 bench/gpu_session.py larger --data "$DATA/vcap_placesidecubeonplate_low/1.0.0" \
    --work /tmp/larger --seconds $((L - 110)) --steps 100000 --task PlaceSideCubeOnPlate --seeds 5 \
    --conditions swap blind --out "$OUT/larger.json"
else
  echo "== 3 skipped: $L s left (needs 150), or no $DATA/vcap_placesidecubeonplate_low" | tee -a "$OUT/parts.log"
fi
echo "session done after $(( $(date +%s) - T0 )) s"
