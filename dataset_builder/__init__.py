"""CT-RATE-VQA builder: ReXGroundingCT masks + CT-RATE volumes (or the built-in synthetic CT
source) -> selected slices -> lesion boxes -> `plain` / `zoom` images and grounding targets
(mask, box, points) -> rows of the configs `zoom`, `plain` and `grounding` -> Parquet shards
laid out as a Hub dataset repo with its card."""

from .builder import CTRateVQA, CTRateVQAConfig
from .config import BuildOptions
from .repo_layout import build_repo, read_manifest

__all__ = ["BuildOptions", "CTRateVQA", "CTRateVQAConfig", "build_repo", "read_manifest"]
