"""Constants of the local Hub: repo types, request kinds and which files go to LFS."""

from __future__ import annotations

import re

REPO_TYPES = ("model", "dataset", "space")
REQUEST_KINDS = (
    "create_repo",
    "delete_repo",
    "validate_yaml",
    "whoami",
    "repo_info",
    "tree",
    "paths_info",
    "commits",
    "refs",
    "preupload",
    "commit",
    "branch",
    "tag",
    "settings",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "head",
    "download",
    "other",
)
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB or more with LFS
# The Hub's default .gitattributes (models + datasets), plus medical volumes.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.lz4", "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz",
    "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar",
    "*.safetensors", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
    "*.zst", "*tfevents*", "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png",
    "*.webp", "*.gif", "*.tif", "*.tiff", "*.mp4", "*.webm", "*.nii", "*.nii.gz", "*.nrrd",
    "*.mha", "*.dcm",
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
