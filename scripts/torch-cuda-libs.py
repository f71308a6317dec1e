#!/usr/bin/env python3
"""Print, colon-separated, the directories of the CUDA libraries a PyTorch install ships
(nvidia/*/lib: cuBLAS, cuRAND, NVRTC, the runtime), for LD_LIBRARY_PATH on a GPU machine
(scripts/bench-gpu.sh, scripts/gpu-checks.sh)."""
import glob
import os

import nvidia

dirs = {os.path.dirname(f) for base in nvidia.__path__
        for f in glob.glob(os.path.join(base, "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs)))
