"""Studies: versioned, multi-seed, tuned and honestly tested reproductions of the papers.

``topograph study NAME [--quick]`` or :func:`run_study`.  Modules: :mod:`.stats` (mean ± std,
Welch/paired t-tests, bootstrap CIs, :func:`compare`), :mod:`.tuning` (Optuna, same budget for
every optimizer), :mod:`.spec` (the study TOML), :mod:`.runner` (resumable execution),
:mod:`.analyses` (report sections).  See docs/studies.md.
"""

from topograph.studies.runner import list_studies, run_study
from topograph.studies.spec import load_study, study_names
from topograph.studies.stats import Comparison, compare, summarize

__all__ = ["Comparison", "compare", "list_studies", "load_study", "run_study", "study_names", "summarize"]
